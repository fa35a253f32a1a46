"""Bearer token and TLS options: the metadata every call carries and the credentials channels are made with.

The token goes out as ``authorization: Bearer <token>`` on every call. It comes from the ``token`` option, else
the first line of ``token_file``, else the ``QUORATE_TOKEN`` environment variable; none of them means no
``authorization`` metadata. TLS is on when any of ``ca_cert``, ``client_cert``/``client_key`` (mutual TLS) or
``tls_server_name`` is given, or an endpoint is ``https://``; without ``ca_cert`` the system roots verify the
nodes. Files are read once, when the client is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from .errors import InvalidConfig

#: The environment variable read for the bearer token when neither ``token`` nor ``token_file`` is given.
TOKEN_ENV = "QUORATE_TOKEN"

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Security:
    """What authenticates this client: call metadata and, with TLS, channel credentials."""

    #: Sent with every call: ``(("authorization", "Bearer <token>"),)`` or empty.
    metadata: tuple[tuple[str, str], ...]
    #: True if channels use TLS.
    tls: bool
    #: The TLS credentials (``None`` for plaintext channels).
    credentials: grpc.ChannelCredentials | None
    #: Channel options TLS needs (the server name to verify), empty otherwise.
    channel_options: tuple[tuple[str, str], ...]

    @classmethod
    def build(
        cls,
        *,
        token: str | None = None,
        token_file: PathLike | None = None,
        ca_cert: PathLike | None = None,
        client_cert: PathLike | None = None,
        client_key: PathLike | None = None,
        tls_server_name: str | None = None,
        https_endpoints: bool = False,
        environ: Mapping[str, str] = os.environ,
    ) -> Security:
        """Resolves the token and reads the TLS files.

        Raises :class:`~quorate.errors.InvalidConfig` naming the option: an empty or multi-line token, a file
        that cannot be read, or only one of ``client_cert`` and ``client_key``.
        """
        resolved = _token(token, token_file, environ)
        metadata = (("authorization", f"Bearer {resolved}"),) if resolved is not None else ()
        if (client_cert is None) != (client_key is None):
            raise InvalidConfig("client_cert", "client_cert and client_key go together (mutual TLS needs both)")
        tls = https_endpoints or any(x is not None for x in (ca_cert, client_cert, tls_server_name))
        if not tls:
            return cls(metadata=metadata, tls=False, credentials=None, channel_options=())
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read("ca_cert", ca_cert),
            private_key=_read("client_key", client_key),
            certificate_chain=_read("client_cert", client_cert),
        )
        options = (("grpc.ssl_target_name_override", tls_server_name),) if tls_server_name else ()
        return cls(metadata=metadata, tls=True, credentials=credentials, channel_options=options)


def _token(token: str | None, token_file: PathLike | None, environ: Mapping[str, str]) -> str | None:
    if token is not None:
        field, value = "token", token
    elif token_file is not None:
        text = _read("token_file", token_file) or b""
        field, value = "token_file", (text.decode("utf-8", errors="replace").splitlines() or [""])[0]
    elif TOKEN_ENV in environ:
        field, value = TOKEN_ENV, environ[TOKEN_ENV]
    else:
        return None
    value = value.strip()
    if not value:
        raise InvalidConfig(field, "the token is empty")
    if not all("!" <= char <= "~" for char in value):
        raise InvalidConfig(field, "the token must be visible ASCII without spaces")
    return value


def _read(field: str, path: PathLike | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InvalidConfig(field, f"cannot read {os.fspath(path)!r}: {error.strerror or error}") from error


__all__ = ["TOKEN_ENV", "Security"]
