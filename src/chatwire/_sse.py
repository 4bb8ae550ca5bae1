"""Incremental Server-Sent-Events decoder: bytes in, events out, no I/O.

Follows the WHATWG event-stream rules: LF, CR and CRLF line ends (a CR at the
end of one chunk and an LF at the start of the next are one line end);
``field: value`` with at most one leading space stripped; ``:`` comments;
several ``data`` lines joined by ``\\n``; ``event``, ``id`` and ``retry``
fields; an event dispatched on a blank line, and an unfinished event dropped
at the end of the stream. Lines are split on bytes and decoded only when
whole, so a UTF-8 character split across network chunks decodes correctly.

Two departures, both on the side of safety: invalid UTF-8 is a
``ProtocolError`` rather than silently replaced text, and a line or event
larger than ``max_event_bytes`` is a ``ProtocolError`` rather than unbounded
memory use.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "ServerSentEvent"]

from ._errors import ProtocolError

DEFAULT_MAX_EVENT_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"
_SHOWN_LINE_CHARS = 200


class ServerSentEvent:
    """One dispatched event. ``event`` defaults to ``"message"``."""

    __slots__ = ("data", "event", "id", "retry")

    def __init__(
        self, data: str, event: str = "message", id: str = "", retry: int | None = None
    ) -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return (self.data, self.event, self.id, self.retry) == (
            other.data,
            other.event,
            other.id,
            other.retry,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"ServerSentEvent(data={self.data!r}, event={self.event!r}, "
            f"id={self.id!r}, retry={self.retry!r})"
        )


def shown(line: bytes) -> str:
    """A line as it appears in an error message: decoded leniently, truncated."""
    text = line[: _SHOWN_LINE_CHARS * 4].decode("utf-8", "backslashreplace")
    if len(text) > _SHOWN_LINE_CHARS:
        return text[:_SHOWN_LINE_CHARS] + "..."
    return text


class SSEDecoder:
    """Feed it byte chunks as they arrive; it returns the events completed.

    ``lines_seen`` grows whenever a chunk completes a line, so a caller can
    tell a slow but live stream from one that trickles bytes without ever
    finishing a line.
    """

    __slots__ = (
        "_bom_checked",
        "_buffer",
        "_data",
        "_data_size",
        "_event_type",
        "_last_id",
        "_max",
        "_overflow",
        "_retry",
        "_skip_lf",
        "lines_seen",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buffer = b""
        self._skip_lf = False
        self._bom_checked = False
        self._data: list[bytes] = []
        self._data_size = 0
        self._event_type = ""
        self._last_id = ""
        self._retry: int | None = None
        self._overflow: ProtocolError | None = None
        self.lines_seen = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume one chunk of the byte stream; return the events it completed.

        A ``ProtocolError`` carries, in ``before``, the data of the events this
        chunk completed before the fault, so no text is lost to it.
        """
        events: list[ServerSentEvent] = []
        try:
            region = self._complete_lines(chunk)
            if region:
                self._process(region.splitlines(), events)
            self._raise_overflow()
        except ProtocolError as exc:
            exc.before = [event.data for event in events]
            raise
        return events

    def feed_data(self, chunk: bytes) -> list[str]:
        """Like ``feed``, but return only each completed event's data.

        This is the hot path of every provider. Streams are nearly always a
        run of ``data: ...`` lines each followed by a blank line; those are
        cut out of the decoded chunk in bulk. Anything else in the chunk (other
        fields, comments, CR line ends, multi-line data, bad UTF-8) goes
        through the general line-by-line path, so the result is the same.
        """
        datas: list[str] = []
        try:
            region = self._complete_lines(chunk)
            if region:
                self._data_of(region, datas)
            self._raise_overflow()
        except ProtocolError as exc:
            exc.before = datas
            raise
        return datas

    def _data_of(self, region: bytes, datas: list[str]) -> None:
        if self._data or self._event_type or b"\r" in region:
            self._process_into(region.splitlines(), datas)
            return
        try:
            text = region.decode("utf-8")
        except UnicodeDecodeError:
            self._process_into(region.splitlines(), datas)
            return
        *blocks, rest = text.split("\n\n")
        oversized = len(region) > self._max
        for block in blocks:
            if block[:5] == "data:" and "\n" not in block:
                if oversized and len(block) > self._max:
                    raise ProtocolError(
                        f"event larger than {self._max} bytes", line=shown(block.encode())
                    )
                datas.append(block[6:] if block[5:6] == " " else block[5:])
            else:
                self._process_into((block + "\n\n").encode().splitlines(), datas)
        if rest:
            self._process_into(rest.encode().splitlines(), datas)

    def _process_into(self, lines: list[bytes], datas: list[str]) -> None:
        events: list[ServerSentEvent] = []
        try:
            self._process(lines, events)
        finally:
            datas.extend(event.data for event in events)

    def _raise_overflow(self) -> None:
        """A line still growing past the limit fails only after the complete ones are out."""
        overflow, self._overflow = self._overflow, None
        if overflow is not None:
            raise overflow

    def _complete_lines(self, chunk: bytes) -> bytes:
        """Add ``chunk`` to what is buffered; take off and return the complete lines."""
        if not chunk:
            return b""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        buf = self._buffer + chunk if self._buffer else chunk
        if not self._bom_checked:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buffer = buf
                return b""
            self._bom_checked = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
        cut = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        if cut < 0:
            self._buffer = buf
            self._check_pending(buf)
            return b""
        if cut == len(buf) - 1:
            self._buffer = b""
            self._skip_lf = buf[cut] == 0x0D
            region = buf
        else:
            self._buffer = buf[cut + 1 :]
            self._check_pending(self._buffer)
            region = buf[: cut + 1]
        # Progress for callers' timeouts: grows whenever a line completes.
        self.lines_seen += 1
        return region

    def _check_pending(self, pending: bytes) -> None:
        if len(pending) + self._data_size > self._max:
            self._overflow = ProtocolError(
                f"event larger than {self._max} bytes without a line end",
                line=shown(pending),
            )

    def _process(self, lines: list[bytes], events: list[ServerSentEvent]) -> None:
        """Apply complete lines; append each event they dispatch to ``events``."""
        data = self._data
        limit = self._max
        for line in lines:
            if line[:5] == b"data:":
                value = line[5:]
                if value[:1] == b" ":
                    value = value[1:]
                data.append(value)
                self._data_size += len(value) + 1
                if self._data_size > limit:
                    raise ProtocolError(f"event larger than {limit} bytes", line=shown(line))
            elif not line:
                if data:
                    events.append(self._dispatch(data))
                    data = self._data = []
                    self._data_size = 0
                self._event_type = ""
            elif line[0] != 0x3A:  # a line starting with ':' is a comment
                self._field(line)

    def _dispatch(self, data: list[bytes]) -> ServerSentEvent:
        raw = data[0] if len(data) == 1 else b"\n".join(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"event data is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                line=shown(raw),
            ) from None
        return ServerSentEvent(text, self._event_type or "message", self._last_id, self._retry)

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event_type = self._decode_field(value, line)
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = self._decode_field(value, line)
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        # Any other field name is ignored, as the spec requires.

    @staticmethod
    def _decode_field(value: bytes, line: bytes) -> str:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("field is not valid UTF-8", line=shown(line)) from None
