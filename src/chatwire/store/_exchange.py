"""One logged exchange, and how its status is named."""

from __future__ import annotations

__all__ = [
    "STATUSES",
    "Exchange",
    "iso_time",
    "new_conversation_id",
    "new_key",
    "prompt_of",
    "status_of",
]

import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from .._process import random_hex

# ``open``: still streaming (its text is flushed as it grows); ``abandoned``: the
# process writing it died mid-answer, its text as far as it was flushed.
STATUSES = ("open", "complete", "interrupted", "error", "abandoned")


def new_conversation_id() -> str:
    """A new conversation's id: the time in milliseconds, then 64 random bits.

    Ids that grow with time are written at the end of the log's index of
    conversations; random ones would each land on a page of their own.
    """
    return f"{time.time_ns() // 1_000_000:011x}{random_hex(16)}"


def new_key() -> str:
    """An exchange's own id, unique across every process writing one log: this
    process's random prefix and a count (a fork starts a prefix of its own)."""
    return next(keys)


def _new_key_prefix() -> None:
    global keys
    # Made in C, one call a key, and in order, as the log's index likes them.
    keys = map(f"{random_hex(24)}-%012x".__mod__, itertools.count())


keys: Iterator[str]
_new_key_prefix()
# Registered after _process's own hook, so a child draws its prefix from fresh digits.
os.register_at_fork(after_in_child=_new_key_prefix)


# Formatting the date takes most of the time, and it changes once a second.
_this_second = (-1, "")


def iso_time(seconds: float) -> str:
    """``seconds`` since the epoch in UTC, as ``datetime.isoformat`` writes it to the
    millisecond."""
    global _this_second
    second, date = _this_second
    if not 0.0 <= seconds - second < 1.0:
        second = int(seconds)
        date = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _this_second = (second, date)
    # %d cuts the milliseconds short, as int() does, in the same step as the rest: a
    # third faster than an f-string around int(), on a path every answer takes.
    return "%s%03d+00:00" % (date, (seconds - second) * 1000)  # noqa: UP031


def _now() -> str:
    return iso_time(time.time())


def prompt_of(messages: list[dict[str, Any]]) -> str:
    """The text of the last message sent: what the user asked."""
    if not messages:
        return ""
    content = messages[-1].get("content")
    if isinstance(content, list):  # parts: the text ones, joined
        texts = (p.get("text") for p in content if isinstance(p, dict) and "text" in p)
        return "".join(str(text) for text in texts)
    return "" if content is None else str(content)


@dataclass
class Exchange:
    """One request and its answer, as logged."""

    conversation_id: str
    provider: str
    model: str
    messages: list[dict[str, Any]]
    response: str = ""
    status: str = "complete"
    error: str | None = None
    started_at: str = field(default_factory=_now)
    first_token_seconds: float | None = None
    total_seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # The answer's tool calls, whole, in OpenAI's message form (None: it called none).
    tool_calls: list[dict[str, Any]] | None = None
    id: int | None = None
    key: str = field(default_factory=new_key)

    @property
    def prompt(self) -> str:
        """The text of the last message sent: what the user asked."""
        return prompt_of(self.messages)

    def history(self) -> list[dict[str, Any]]:
        """Its messages and its answer: the conversation up to the end of this exchange."""
        messages = list(self.messages)
        if self.tool_calls:
            messages.append(
                {"role": "assistant", "content": self.response or None,
                 "tool_calls": self.tool_calls}
            )  # fmt: skip
        elif self.response:
            messages.append({"role": "assistant", "content": self.response})
        return messages

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def status_of(error: BaseException | None, text: str, called_tools: bool = False) -> str:
    """How an exchange ended: complete, interrupted (something received, or stopped), or error."""
    if error is None:
        return "complete"
    from .._errors import ChatwireError

    if text or called_tools or not isinstance(error, ChatwireError):
        return "interrupted"  # broken after some text, or stopped (Ctrl-C, cancel, close)
    return "error"
