"""Small shared types."""

from __future__ import annotations

__all__ = ["ROLES", "Message"]

from typing import Literal, TypedDict

ROLES = ("system", "user", "assistant")


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str
