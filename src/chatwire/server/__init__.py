"""The chatwire gateway: an ASGI app that speaks the OpenAI API and free-chat.

    chatwire serve --provider local --port 8000

or, from Python, ``uvicorn.run(chatwire.server.create_app("local"))``.
"""

from __future__ import annotations

from ._app import DEFAULT_MAX_BODY, Gateway, create_app

__all__ = ["DEFAULT_MAX_BODY", "Gateway", "create_app"]
