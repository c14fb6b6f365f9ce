"""Who can reach a node or a relay, and the rule that an exposed one needs credentials.

Bound to loopback (``127.0.0.0/8``, ``::1``, ``localhost``) a node or relay
may run without credentials: only this machine reaches it. Anything else
makes it *exposed*:

* a bind host that is not loopback: a LAN address, ``auto``, a wildcard
  (``0.0.0.0``, ``*``, ``::``), or any host name but ``localhost``;
* ``bind_public`` (every interface);
* a ``public_url`` whose host is not loopback: the operator says others will
  reach the node there, through a port forward or a tunnel to its loopback
  socket, so the socket being on loopback protects nothing;
* for a node behind a relay (``connect_to``): a relay that is not on
  loopback. Such a node listens nowhere, but it serves whatever reaches it
  through the relay, and the relay passes on every client's request (its own
  key only admits nodes), so the node is exactly as exposed as its relay.

An exposed node or relay needs an API key or CurveZMQ; without either it
refuses to start (:func:`check_exposure` raises :class:`HostError` before
anything is bound), unless ``insecure`` is given: then it starts, logs a
WARNING and its health reports ``"insecure": true``.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from paglets.binding import AUTO, WILDCARD_HOSTS
from paglets.core.errors import HostError

log = logging.getLogger("paglets.security")

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """True for an address in 127.0.0.0/8, ``::1`` (bracketed or not) and ``localhost``."""
    text = host.strip().lower().removeprefix("[").removesuffix("]")
    if text in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False  # a host name: it may resolve to anything
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def url_host(url: str) -> str:
    """The host of ``scheme://HOST:PORT[/...]``, lower case (IPv6 without brackets); "" if none."""
    try:
        return urlsplit(url.strip()).hostname or ""
    except ValueError:  # an unbalanced bracket: no host we could call loopback
        return ""


def exposure(
    host: str,
    *,
    bind_public: bool = False,
    public_url: str | None = None,
    connect_to: str | None = None,
) -> str | None:
    """Where a node (or relay) can be reached from beyond this machine, or None when only from it."""
    if connect_to:
        return None if is_loopback(url_host(connect_to)) else f"relay {connect_to}"
    if bind_public:
        return "every interface (bind_public)"
    text = host.strip()
    if text.lower() == AUTO:
        return "this machine's LAN address (bind auto)"
    if text in WILDCARD_HOSTS:
        return f"every interface (bind {text or '0.0.0.0'})"
    if not is_loopback(text):
        return text
    if public_url and not is_loopback(url_host(public_url)):
        return f"public url {public_url}"
    return None


def check_exposure(who: str, where: str | None, *, credentials: bool, insecure: bool, at_risk: str) -> bool:
    """Apply the rule; True when ``who`` runs open off loopback (``insecure``), else False.

    ``where`` comes from :func:`exposure`; ``credentials`` is whether an API
    key or CurveZMQ is configured; ``at_risk`` says what anyone could do to
    an open one. Raises :class:`HostError` naming the options that fix it.
    """
    if where is None or credentials:
        return False
    if not insecure:
        raise HostError(
            f"{who} would be reachable on {where} with neither an API key nor CurveZMQ, so anyone who can "
            f"reach it could {at_risk}; add an API key (--api-key-env VAR, or api_key=...) or CurveZMQ "
            f"(--curve-secret FILE --curve-allow DIR), or pass --insecure (insecure=True) to run it open anyway"
        )
    log.warning(
        "INSECURE: %s is reachable on %s with neither an API key nor CurveZMQ (--insecure): anyone who can "
        "reach it can %s",
        who,
        where,
        at_risk,
    )
    return True


__all__ = ["check_exposure", "exposure", "is_loopback", "url_host"]
