"""What belongs to this process and must not outlive a fork: its id, its random digits.

Both are kept current by a hook the child of a fork runs, so the callers on
a busy path ask neither the kernel for the pid nor for random bytes each time.
"""

from __future__ import annotations

__all__ = ["pid", "random_hex"]

import os


def pid() -> int:
    """This process's id, without a system call."""
    return _pid


def random_hex(digits: int) -> str:
    """``digits`` hex digits (at most 32) from the system's random source.

    The kernel is asked for 4 KiB at a time (asking it for each id cost a
    busy gateway more than the rest of the id), kept as pieces of 32 digits
    that a thread takes with one ``pop``, a step the interpreter's lock keeps
    whole: with a lock of our own around a shared offset, an id took 0.28 us
    in a loop on an idle machine; this way 0.16.
    """
    if digits > _PIECE:
        raise ValueError(f"random_hex gives at most {_PIECE} digits, not {digits}")
    try:
        return _pieces.pop()[:digits]
    except IndexError:  # none left (two threads may both refill: neither reuses a digit)
        block = os.urandom(4096).hex()
        _pieces.extend([block[start : start + _PIECE] for start in range(0, len(block), _PIECE)])
        return random_hex(digits)


def _forked() -> None:
    # The child must not hand out its parent's digits again.
    global _pid
    _pid = os.getpid()
    _pieces.clear()


_PIECE = 32  # the longest id asked for: a response's
_pid = os.getpid()
_pieces: list[str] = []
os.register_at_fork(after_in_child=_forked)
