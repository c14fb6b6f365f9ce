"""Where a node listens, and the address it tells others to use.

Two questions with different answers on a real network:

* the **bind host** is the interface the front socket listens on
  (``0.0.0.0`` for all of them);
* the **advertised host** is what goes into the node's address
  (``tcp://HOST:PORT``), which peers, gossip and LAN discovery pass around.
  ``0.0.0.0`` is no use there, so a wildcard bind advertises the machine's
  first LAN address instead; an explicit ``public_url`` (a node behind NAT or
  a port forward) overrides the advertised address and nothing else.

:func:`resolve_binding` is a pure decision over :func:`lan_addresses`, so it
can be tested by replacing that one function.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import socket
import subprocess
from dataclasses import dataclass

log = logging.getLogger("paglets.binding")

AUTO = "auto"
ALL_INTERFACES = "0.0.0.0"
WILDCARD_HOSTS = frozenset({"0.0.0.0", "*", "", "::"})
LOOPBACK = "127.0.0.1"
IP_COMMAND_TIMEOUT = 2.0
_UNROUTABLE_PROBE = ("10.255.255.255", 1)  # a connect() target; nothing is ever sent to it


@dataclass(frozen=True)
class Binding:
    """The interface the node listens on and the host it advertises."""

    bind_host: str
    advertised_host: str


def lan_addresses() -> list[str]:
    """The machine's non-loopback IPv4 addresses on interfaces that are up, best first.

    Asks ``ip -j -4 addr``, else reads ``/proc/net/fib_trie``, else asks the
    kernel which source address a UDP socket would use. Never raises; an
    empty list when the machine has no such address.
    """
    for source in (_addresses_from_ip_command, _addresses_from_fib_trie, _address_from_udp_probe):
        try:
            found = source()
        except Exception as exc:  # a fallback chain: any failure means "try the next source"
            log.debug("lan address source %s failed: %s", source.__name__, exc)
            continue
        if found is not None:
            return found
    return []


def _is_lan_address(text: str) -> bool:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast)


def _addresses_from_ip_command() -> list[str] | None:
    """None when ``ip`` is missing or fails, so the caller falls back."""
    ip = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if shutil.which(p)), None)
    if ip is None:
        return None
    result = subprocess.run(
        [ip, "-j", "-4", "addr", "show"], capture_output=True, text=True, timeout=IP_COMMAND_TIMEOUT, check=False
    )
    if result.returncode != 0:
        return None
    found: list[str] = []
    for link in json.loads(result.stdout or "[]"):
        flags = link.get("flags") or []
        if "UP" not in flags or "LOOPBACK" in flags:
            continue
        for info in link.get("addr_info") or []:
            local = info.get("local")
            if info.get("family", "inet") == "inet" and isinstance(local, str) and _is_lan_address(local):
                found.append(local)
    return list(dict.fromkeys(found))


def _addresses_from_fib_trie() -> list[str] | None:
    """The ``/32 host LOCAL`` entries of the kernel's routing trie (no link state there)."""
    try:
        with open("/proc/net/fib_trie") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return None
    found: list[str] = []
    last_address = None
    for line in lines:
        text = line.strip()
        if text.startswith("|--"):
            last_address = text[3:].strip()
        elif text == "/32 host LOCAL" and last_address and _is_lan_address(last_address):
            found.append(last_address)
    return list(dict.fromkeys(found))


def _address_from_udp_probe() -> list[str] | None:
    # connect() on a UDP socket only picks a route and a source address; no packet leaves.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(_UNROUTABLE_PROBE)
        address = probe.getsockname()[0]
    return [address] if _is_lan_address(address) else []


def resolve_binding(host: str, *, bind_public: bool = False, public_url: str | None = None, port: int) -> Binding:
    """Decide where to listen and what host to advertise.

    * ``host="auto"``: listen on the first LAN address and advertise it
      (127.0.0.1, with a warning, when the machine has none);
    * ``bind_public``: listen on all interfaces, advertise the first LAN address;
    * otherwise listen on ``host``; a wildcard (``0.0.0.0``, ``*``, ``""``)
      advertises the first LAN address, anything else advertises itself.

    ``public_url`` is only checked here (ValueError when it is not
    ``tcp://HOST:PORT``); :func:`advertised_address` puts it in place.
    """
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"port {port!r} out of range 0-65535")
    if public_url is not None:
        check_public_url(public_url)
    if not isinstance(host, str):
        raise ValueError(f"bind host must be a string, got {type(host).__name__}")
    host = host.strip()
    if bind_public:
        return Binding(ALL_INTERFACES, _first_lan_address("listening on all interfaces", port))
    if host.lower() == AUTO:
        address = _first_lan_address("bind host 'auto'", port)
        return Binding(address, address)
    if host in WILDCARD_HOSTS:
        return Binding(host or ALL_INTERFACES, _first_lan_address(f"bind host {host!r}", port))
    return Binding(host, host)


def _first_lan_address(why: str, port: int) -> str:
    addresses = lan_addresses()
    if addresses:
        return addresses[0]
    log.warning(
        "%s: this machine has no LAN address; using %s on port %d, reachable from this machine only",
        why,
        LOOPBACK,
        port,
    )
    return LOOPBACK


def check_public_url(public_url: str) -> str:
    """``public_url`` normalised (no trailing slash); ValueError unless it is ``tcp://HOST:PORT``."""
    if not isinstance(public_url, str):
        raise ValueError(f"public url must be a string, got {type(public_url).__name__}")
    text = public_url.strip().rstrip("/")
    host, sep, port = text.removeprefix("tcp://").rpartition(":")
    if (
        not text.startswith("tcp://")
        or not sep
        or not host
        or any(c.isspace() or c in "/?#@" for c in host)
        or not port.isdigit()
        or not 0 < int(port) < 65536
    ):
        raise ValueError(f"public url {public_url!r} must look like tcp://HOST:PORT")
    return text


def advertised_address(binding: Binding, port: int, public_url: str | None = None) -> str:
    """The node address others should use: ``public_url`` when given, else ``tcp://HOST:PORT``."""
    if public_url:
        return check_public_url(public_url)
    host = binding.advertised_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"tcp://{host}:{int(port)}"


__all__ = ["Binding", "advertised_address", "check_public_url", "lan_addresses", "resolve_binding"]
