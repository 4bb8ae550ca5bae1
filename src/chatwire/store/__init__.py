"""The conversation log: every exchange, searchable, in SQLite or PostgreSQL.

One row per exchange: which conversation, when, provider and model, the
messages sent, the answer (whole, or as far as it got), its status
(``open`` while it streams, then ``complete``, ``interrupted`` or ``error``;
``abandoned`` when the process writing it died), time to first token, total
time and token counts when the provider reported them.

``Store()`` is the SQLite file at ``$CHATWIRE_HOME/logs.db`` (default: the
user's data directory); ``Store(path)`` another file; ``Store(url)`` a
``postgresql://`` database (``pip install 'chatwire[postgres]'``) or a
``sqlite:///`` file. ``open_store()`` picks the one ``CHATWIRE_DATABASE_URL``
names. Writes go through a writer thread and never reach the caller: a
failure is reported once as a warning on the ``chatwire`` logger, the
records wait and are tried again, and the answer goes on.
"""

from __future__ import annotations

__all__ = [
    "DATABASE_URL_ENV",
    "STATUSES",
    "Exchange",
    "Recorder",
    "Store",
    "default_path",
    "logging_disabled",
    "new_conversation_id",
    "open_store",
    "status_of",
]

import os

from ._base import Store
from ._exchange import STATUSES, Exchange, new_conversation_id, status_of
from ._recorder import Recorder
from ._sqlite import default_path

DATABASE_URL_ENV = "CHATWIRE_DATABASE_URL"
NO_LOG_ENV = "CHATWIRE_NO_LOG"


def logging_disabled() -> bool:
    """``CHATWIRE_NO_LOG`` is set to something other than 0/false/no."""
    return os.environ.get(NO_LOG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def open_store(url: str | None = None) -> Store:
    """The log ``url`` names, else ``CHATWIRE_DATABASE_URL``, else the default SQLite file."""
    return Store(url or os.environ.get(DATABASE_URL_ENV) or None)
