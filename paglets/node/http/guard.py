"""What a request must show before the shim does anything for it: Host, Origin, key, Content-Type.

A web page the user opens can send requests to the shim (browsers reach
loopback), so every request is checked here, in this order, before a route
runs or a body is read:

1. ``Host`` (DNS rebinding): when present it must name an address the shim
   serves, with its port (:class:`ServedNames`), else 400. A request without
   ``Host`` (HTTP/1.0 tools) passes: a browser always sends one.
2. ``Origin``: when present it must be the shim's own, ``http://`` plus a
   served ``host:port``, else 403 (``Origin: null`` included).
3. The API key, when the node has one: ``Authorization: Bearer KEY`` on every
   route but ``GET /health`` and the dashboard's files (:data:`PUBLIC_PATHS`), else 401.
4. ``Content-Type`` on a state-changing method (POST, PUT, PATCH, DELETE):
   the route's type, ``application/json`` (``application/msgpack`` for
   ``/envelopes``), even when there is no body, else 415. A page can send
   those types cross-origin only after a CORS preflight, which the shim never
   grants, so no form or ``fetch`` without one can change anything.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message as Headers

from paglets.binding import WILDCARD_HOSTS, lan_addresses
from paglets.exposure import is_loopback
from paglets.node.http.observe_routes import STATIC_FILES
from paglets.node.http.requests import HttpRefusal

JSON = "application/json"
# What GET may fetch without the API key: health, and the dashboard's page and files (they hold no data).
PUBLIC_PATHS = frozenset({"/health", *STATIC_FILES})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_:")


@dataclass(frozen=True)
class ServedNames:
    """The ``host:port`` values a browser may show in ``Host`` and ``Origin`` for this shim."""

    hosts: frozenset[str]  # lower case; IPv6 without brackets
    port: int

    @classmethod
    def for_shim(cls, bind_host: str, port: int, extra_hosts: Iterable[str] = ()) -> ServedNames:
        """The names of a shim listening on ``bind_host:port``, plus ``extra_hosts`` (advertised, public).

        * bound to loopback: the loopback names (``localhost``, ``127.0.0.1``,
          ``[::1]``) and the bind host itself;
        * bound to one other address: that address;
        * bound to every interface: the loopback names, this machine's LAN
          addresses and its host name.

        ``extra_hosts`` (the advertised host, a public URL's host) join in.
        An IP literal cannot be rebound, and a name the operator configured
        is not the attacker's, so none of these lets a foreign page in.
        """
        bind = bind_host.strip().lower().removeprefix("[").removesuffix("]")
        names = set()
        if bind in WILDCARD_HOSTS:
            names.update(LOOPBACK_HOSTS)
            names.update(lan_addresses())
            names.add(socket.gethostname().lower())
        elif is_loopback(bind):
            names.update(LOOPBACK_HOSTS)
            names.add(bind)
        else:
            names.add(bind)
        names.update(host.strip().lower().removeprefix("[").removesuffix("]") for host in extra_hosts if host)
        return cls(frozenset(names), int(port))

    def accepts_host(self, value: str) -> bool:
        """True when ``value`` (a Host header: ``host[:port]``) names this shim."""
        parsed = _split_host(value.strip().lower())
        return parsed is not None and parsed[1] == self.port and parsed[0] in self.hosts

    def accepts_origin(self, value: str) -> bool:
        """True when ``value`` (an Origin header) is ``http://`` plus a served ``host:port``."""
        scheme, sep, rest = value.strip().partition("://")
        return bool(sep) and scheme.lower() == "http" and "/" not in rest and self.accepts_host(rest)


def _split_host(value: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (port 80 when absent)."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        port_text = rest[1:] if rest else "80"
    else:
        host, sep, port_text = value.partition(":")
        if not sep:
            port_text = "80"
        if ":" in port_text:
            return None  # an unbracketed IPv6 literal is not a valid Host
    host = host.removesuffix(".")  # "localhost." is "localhost"
    if not host or not set(host) <= _HOST_CHARS or not port_text.isdigit() or len(port_text) > 5:
        return None
    return host, int(port_text)


def check_request(names: ServedNames, api_key: str | None, method: str, path: str, headers: Headers) -> None:
    """Refuse (HttpRefusal) a request whose Host, Origin or key is wrong; see the module docstring."""
    hosts = headers.get_all("Host") or []
    if len(hosts) > 1 or (hosts and not names.accepts_host(hosts[0])):
        shown = hosts[0] if len(hosts) == 1 else f"{len(hosts)} Host headers"
        raise HttpRefusal(400, f"Host {shown!r:.100} is not an address this node serves (DNS rebinding?)")
    origins = headers.get_all("Origin") or []
    if len(origins) > 1 or (origins and not names.accepts_origin(origins[0])):
        shown = origins[0] if len(origins) == 1 else f"{len(origins)} Origin headers"
        raise HttpRefusal(
            403,
            f"cross-origin request from {shown!r:.100} refused: only the node's own page may ask it",
            "ForbiddenError",
        )
    if api_key and not (method == "GET" and (path.rstrip("/") or "/") in PUBLIC_PATHS):
        check_key(api_key, headers)


def check_key(api_key: str, headers: Headers) -> None:
    """401 unless ``Authorization: Bearer KEY`` carries ``api_key`` (compared in constant time)."""
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    offered = token.strip().encode("latin-1", "replace") if scheme.lower() == "bearer" else b""
    if not hmac.compare_digest(offered, api_key.encode("utf-8")):
        raise HttpRefusal(
            401, "missing or wrong API key", "AuthenticationError", headers={"WWW-Authenticate": "Bearer"}
        )


def check_content_type(method: str, expected: str, headers: Headers) -> None:
    """415 unless a state-changing request declares ``expected`` (``application/json`` if empty)."""
    if method not in STATE_CHANGING:
        return
    wanted = expected or JSON
    if headers.get_content_type() != wanted or "Content-Type" not in headers:
        declared = headers.get("Content-Type") or "none"
        raise HttpRefusal(
            415,
            f"{method} requests here take Content-Type {wanted} (even without a body), got {declared:.80}",
        )


__all__ = ["JSON", "STATE_CHANGING", "ServedNames", "check_content_type", "check_key", "check_request"]
