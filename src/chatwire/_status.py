"""A spinner on stderr while the first piece of an answer is awaited.

It draws only when stderr is a terminal, so pipes and logs stay clean.
"""

from __future__ import annotations

__all__ = ["Spinner"]

import sys
import threading
from types import TracebackType

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Spinner:
    def __init__(self, label: str, interval: float = 0.1) -> None:
        self._label = label
        self._interval = interval
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream = sys.stderr

    def __enter__(self) -> Spinner:
        if self._stream.isatty():
            self._thread = threading.Thread(target=self._spin, name="chatwire-spinner", daemon=True)
            self._thread.start()
        return self

    def _spin(self) -> None:
        frame = 0
        while not self._stopped.wait(self._interval):
            self._stream.write(f"\r{_FRAMES[frame % len(_FRAMES)]} {self._label}…")
            self._stream.flush()
            frame += 1

    def stop(self) -> None:
        """Stop and erase the spinner; cheap to call again."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._stream.write("\r\033[K")
            self._stream.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
