"""Small shared types."""

from __future__ import annotations

__all__ = ["ROLES"]

# The roles a chat message may have.
ROLES = ("system", "developer", "user", "assistant", "tool")
