"""The server's own TLS, when it terminates HTTPS itself (kept apart from the app so the CLI can
check a certificate before any worker, or prometheus_client, is started)."""

from __future__ import annotations

import ssl

from gateway.config.errors import ConfigError
from gateway.config.schema import ServerCfg


def tls_context(settings: ServerCfg) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plain HTTP; a bad pair is a ConfigError."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("server: tls_cert_file and tls_key_file go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"server: cannot load the TLS certificate or key: {err}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context
