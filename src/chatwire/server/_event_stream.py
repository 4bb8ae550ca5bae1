"""A ``text/event-stream`` response that stops the work behind it when the client leaves.

Starlette's ``StreamingResponse`` does this with an anyio task group per
response; on a busy gateway that set-up is a measurable part of each
request, so this one uses a single watcher task instead: when the server
reports ``http.disconnect``, the watcher cancels the task sending events.
The cancellation lands inside the event generator, whose ``finally`` closes
the upstream connection or stops local generation.
"""

from __future__ import annotations

__all__ = ["EventStream"]

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.responses import StreamingResponse


class EventStream(StreamingResponse):
    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterator[bytes],
        headers: Mapping[str, str] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(content, headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        disconnected = False

        async def watch() -> None:
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            task.cancel()

        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        watcher = asyncio.ensure_future(watch())
        try:
            async for chunk in self.body_iterator:  # our event generators yield bytes
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not disconnected:
                raise
            task.uncancel()  # the client left: that ends the response, not the server
        finally:
            watcher.cancel()
            try:
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                if self._on_close is not None:
                    self._on_close()
