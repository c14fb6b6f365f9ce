"""CurveZMQ: encrypted, authenticated connections between clients, nodes and relays.

Keys are pyzmq certificate files: ``paglets keys generate DIR`` writes
``NAME.key`` (public) and ``NAME.key_secret`` (secret and public). A server
(a node's front socket, a relay) serves with its secret key and accepts only
clients whose public key files are in its allow directory, checked by
pyzmq's ZAP authenticator. A client names the server's public key and
proves itself with its own key pair.

* :class:`CurveIdentity` — our key pair, and the server key we expect (by
  default our own public key: a cluster that shares one server key pair).
* :class:`CurveServer` — serve a socket with Curve and run the authenticator.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from paglets.core.errors import AuthenticationError

_authenticators: dict[int, ThreadAuthenticator] = {}
_lock = threading.Lock()


def generate_keys(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` into ``directory``; returns (public, secret) paths."""
    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(folder, name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)


def load_public_key(path: str | Path) -> bytes:
    try:
        public, _secret = zmq.auth.load_certificate(Path(path).expanduser())
    except (OSError, ValueError) as exc:
        raise AuthenticationError(f"cannot read a public key from {path}: {exc}") from None
    return public


def load_key_pair(path: str | Path) -> tuple[bytes, bytes]:
    try:
        public, secret = zmq.auth.load_certificate(Path(path).expanduser())
    except (OSError, ValueError) as exc:
        raise AuthenticationError(f"cannot read a key pair from {path}: {exc}") from None
    if secret is None:
        raise AuthenticationError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


@dataclass(frozen=True)
class CurveIdentity:
    """Our key pair, and the public key of the servers we connect to."""

    public: bytes
    secret: bytes
    server_key: bytes

    @classmethod
    def from_files(cls, secret_file: str | Path, server_key_file: str | Path | None = None) -> CurveIdentity:
        public, secret = load_key_pair(secret_file)
        server = load_public_key(server_key_file) if server_key_file else public
        return cls(public, secret, server)

    def secure_client(self, sock: zmq.Socket, server_key: bytes | None = None) -> None:
        """Make ``sock`` a Curve client of a server with ``server_key`` (ours by default)."""
        sock.curve_serverkey = server_key or self.server_key
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret

    def cache_key(self) -> bytes:
        """Distinguishes sockets made with different identities (client channels are cached)."""
        return self.public + self.server_key


class CurveServer:
    """Serves sockets with Curve; only clients whose keys are in ``allow_dir`` get in."""

    def __init__(self, public: bytes, secret: bytes, allow_dir: str | Path, domain: str):
        self.public = public
        self.secret = secret
        self.allow_dir = Path(allow_dir).expanduser()
        if not self.allow_dir.is_dir():
            raise AuthenticationError(f"curve allow directory {self.allow_dir} does not exist")
        self.domain = domain

    @classmethod
    def from_files(cls, secret_file: str | Path, allow_dir: str | Path, domain: str) -> CurveServer:
        public, secret = load_key_pair(secret_file)
        return cls(public, secret, allow_dir, domain)

    def serve(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a Curve server; call before bind."""
        authenticator = _authenticator(sock.context)
        authenticator.configure_curve(domain=self.domain, location=str(self.allow_dir))
        sock.zap_domain = self.domain.encode()
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True


def _authenticator(ctx: zmq.Context) -> ThreadAuthenticator:
    """One ZAP authenticator per context, started on first use (domains keep servers apart)."""
    with _lock:
        auth = _authenticators.get(id(ctx))
        if auth is None or not auth.is_alive():
            auth = ThreadAuthenticator(ctx)
            auth.start()
            _authenticators[id(ctx)] = auth
        return auth


__all__ = ["CurveIdentity", "CurveServer", "generate_keys", "load_key_pair", "load_public_key"]
