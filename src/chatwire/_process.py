"""What belongs to this process and must not outlive a fork: its id, its random digits.

Both are kept current by a hook the child of a fork runs, so the callers on
a busy path ask neither the kernel for the pid nor for random bytes each time.
"""

from __future__ import annotations

__all__ = ["pid", "random_hex"]

import os
import threading


def pid() -> int:
    """This process's id, without a system call."""
    return _pid


def random_hex(digits: int) -> str:
    """``digits`` hex digits from the system's random source, drawn 4 KiB at a time:
    asking the kernel for each id costs a busy gateway more than the rest of the id."""
    global _random, _random_at
    with _random_lock:
        start = _random_at
        if start + digits > len(_random):
            _random, start = os.urandom(4096).hex(), 0
        _random_at = start + digits
        return _random[start : start + digits]


def _forked() -> None:
    # The child must not hand out its parent's digits again (nor wait on its lock).
    global _pid, _random, _random_at, _random_lock
    _pid = os.getpid()
    _random, _random_at, _random_lock = "", 0, threading.Lock()


_pid = os.getpid()
_random, _random_at = "", 0
_random_lock = threading.Lock()
os.register_at_fork(after_in_child=_forked)
