"""How a transport fails, whichever library ran it; the drivers above name the provider."""

from __future__ import annotations

__all__ = ["ConnectFailed", "ConnectTimedOut", "ConnectionLost", "ReadTimedOut", "TransportError"]


class TransportError(Exception):
    """The exchange failed below HTTP's meaning: no connection, silence, a broken stream."""


class ConnectFailed(TransportError):
    """No connection could be made (refused, unknown host, TLS refused, proxy refused)."""


class ConnectTimedOut(TransportError):
    """No connection within the connect timeout."""


class ReadTimedOut(TransportError):
    """Nothing read within the read timeout."""


class ConnectionLost(TransportError):
    """The connection broke, or the server broke HTTP, once the exchange had begun."""
