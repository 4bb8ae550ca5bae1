"""HTTP for the providers: httpx for sync exchanges, aiohttp for async ones.

A ``Transport`` holds both drivers and the settings read from the
environment when it was made (CA bundle, proxies); each driver maps its
library's failures onto ``TransportError``. Everything above the drivers
(SSE decoding, reading events, chatwire's errors, retries) has no I/O and is
shared by both modes. httpx and aiohttp are imported when a driver is first
used, so ``import chatwire`` stays fast.
"""

from __future__ import annotations

__all__ = [
    "ConnectFailed",
    "ConnectTimedOut",
    "ConnectionLost",
    "ReadTimedOut",
    "Transport",
    "TransportError",
    "shared",
]

import threading
from typing import TYPE_CHECKING

from .._process import pid
from ._errors import ConnectFailed, ConnectionLost, ConnectTimedOut, ReadTimedOut, TransportError

if TYPE_CHECKING:
    from ._async import AsyncDriver
    from ._settings import Settings
    from ._sync import SyncDriver


class Transport:
    """The connection pools of one client: an httpx one, and an aiohttp one per loop."""

    def __init__(self) -> None:
        from ._settings import Settings

        self.settings: Settings = Settings()
        self._sync: SyncDriver | None = None
        self._async: AsyncDriver | None = None
        self._lock = threading.Lock()
        self._pid = pid()

    def _forked(self) -> None:
        # A child of a fork must not share its parent's sockets: it opens its own.
        if self._pid != pid():
            self._sync = self._async = None
            self._pid = pid()

    @property
    def sync(self) -> SyncDriver:
        self._forked()
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    from ._sync import SyncDriver

                    self._sync = SyncDriver(self.settings)
        return self._sync

    @property
    def async_(self) -> AsyncDriver:
        self._forked()
        if self._async is None:
            with self._lock:
                if self._async is None:
                    from ._async import AsyncDriver

                    self._async = AsyncDriver(self.settings)
        return self._async

    def close(self) -> None:
        """Close the sync pool (async sessions close with their loops, or ``aclose``)."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        if self._async is not None:
            self._async.close()

    async def aclose(self) -> None:
        """Close the running loop's session and the sync pool."""
        if self._async is not None:
            await self._async.aclose()
        if self._sync is not None:
            self._sync.close()
            self._sync = None


_shared: Transport | None = None
_shared_lock = threading.Lock()


def shared() -> Transport:
    """The process's default transport (in a forked child, with pools of its own)."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = Transport()
    return _shared
