"""The SSE decoder against the WHATWG event-stream rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatwire import ProtocolError
from chatwire._sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes, **kwargs: int) -> list[ServerSentEvent]:
    decoder = SSEDecoder(**kwargs)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


def datas(*chunks: bytes) -> list[str]:
    return [event.data for event in decode(*chunks)]


@pytest.mark.parametrize("newline", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending(newline: bytes) -> None:
    stream = newline.join([b"data: one", b"", b"data: two", b"", b""])
    assert datas(stream) == ["one", "two"]


def test_cr_and_lf_split_across_chunks_are_one_line_end() -> None:
    # "\r" ends one chunk, "\n" starts the next: one line end, not a blank line.
    assert datas(b"data: a\r", b"\ndata: b\r\n\r\n") == ["a\nb"]


def test_space_after_colon_is_optional_and_only_one_is_stripped() -> None:
    assert datas(b"data:x\n\ndata: y\n\ndata:  z\n\n") == ["x", "y", " z"]


def test_comments_are_ignored() -> None:
    assert datas(b": keep-alive\n\n:another\ndata: real\n\n") == ["real"]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert datas(b"data: first\ndata:\ndata: third\n\n") == ["first\n\nthird"]


def test_event_id_and_retry_fields() -> None:
    (event,) = decode(b"event: update\nid: 42\nretry: 1500\ndata: x\n\n")
    assert (event.event, event.id, event.retry, event.data) == ("update", "42", 1500, "x")
    # The id persists across events; the event type does not.
    (_, second) = decode(b"id: 7\nevent: a\ndata: 1\n\ndata: 2\n\n")
    assert (second.id, second.event) == ("7", "message")


def test_bad_retry_and_unknown_fields_are_ignored() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: soon\nfoo: bar\nnocolon\ndata: x\n\n")[0].retry is None


def test_blank_line_without_data_dispatches_nothing() -> None:
    assert datas(b"\n\nevent: x\n\n\n") == []


def test_unfinished_event_at_end_of_stream_is_dropped() -> None:
    assert datas(b"data: done\n\ndata: never finished\n") == ["done"]


def test_leading_bom_is_skipped() -> None:
    assert datas(b"\xef\xbb", b"\xbfdata: x\n\n") == ["x"]


def test_utf8_split_inside_a_character() -> None:
    encoded = "data: héllo ✓ 🎉\n\n".encode()
    chunks = [encoded[i : i + 1] for i in range(len(encoded))]
    assert datas(*chunks) == ["héllo ✓ 🎉"]


def test_invalid_utf8_is_a_protocol_error_naming_the_line() -> None:
    with pytest.raises(ProtocolError, match="not valid UTF-8") as caught:
        decode(b"data: ab\xff\xfecd\n\n")
    assert "ab" in caught.value.line


def test_oversized_line_is_a_protocol_error_not_a_memory_blow_up() -> None:
    decoder = SSEDecoder(max_event_bytes=4096)
    for _ in range(4):
        decoder.feed(b"x" * 1000)
    with pytest.raises(ProtocolError, match="larger than 4096"):
        decoder.feed(b"x" * 1000)


def test_oversized_event_across_many_lines_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="larger than 4096"):
        decode(
            b"data: " + b"y" * 1000 + b"\n" * 1,
            *([b"data: " + b"y" * 1000 + b"\n"] * 10),
            max_event_bytes=4096,
        )


_field_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
    max_size=30,
)
_events = st.lists(
    st.tuples(
        st.lists(_field_text, min_size=1, max_size=3),
        st.one_of(st.none(), _field_text.filter(lambda t: t.strip() == t and t != "")),
    ),
    max_size=8,
)


def _encode(events: list[tuple[list[str], str | None]], newline: bytes) -> bytes:
    out = b": comment" + newline
    for lines, event_type in events:
        if event_type is not None:
            out += b"event: " + event_type.encode() + newline
        for line in lines:
            out += b"data: " + line.encode() + newline
        out += newline
    return out


@given(
    events=_events,
    newline=st.sampled_from([b"\n", b"\r", b"\r\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_any_chunking_decodes_identically(
    events: list[tuple[list[str], str | None]], newline: bytes, cuts: list[int]
) -> None:
    stream = _encode(events, newline)
    positions = sorted({cut % (len(stream) + 1) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *positions], [*positions, len(stream)], strict=True)]
    whole = decode(stream)
    assert decode(*chunks) == whole
    assert [event.data for event in whole] == ["\n".join(lines) for lines, _ in events]
    assert [event.event for event in whole] == [t or "message" for _, t in events]


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=5))
def test_arbitrary_bytes_raise_nothing_but_protocol_errors(data: bytes, cuts: list[int]) -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    positions = sorted({cut % (len(data) + 1) for cut in cuts})
    try:
        for a, b in zip([0, *positions], [*positions, len(data)], strict=True):
            decoder.feed(data[a:b])
    except ProtocolError:
        pass


def decode_data(*chunks: bytes, max_event_bytes: int = 1 << 20) -> list[str]:
    decoder = SSEDecoder(max_event_bytes=max_event_bytes)
    out: list[str] = []
    for chunk in chunks:
        out.extend(decoder.feed_data(chunk))
    return out


_stream_parts = st.lists(
    st.sampled_from(
        [b"data: plain\n\n", b"data:nospace\n\n", b'data: {"delta": "\xc3\xa9"}\n\n',
         b"event: update\ndata: typed\n\n", b": comment\n", b"\n", b"data: two\ndata: lines\n\n",
         b"data: cr\r\n\r\n", b"id: 5\n", b"retry: 10\n", b"data: lone-cr\r\r", b"data:\n\n",
         b"data: unfinished\n"]
    ),
    max_size=25,
)  # fmt: skip


@given(parts=_stream_parts, cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30))
def test_fast_data_path_matches_the_general_path(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    positions = sorted({cut % (len(stream) + 1) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *positions], [*positions, len(stream)], strict=True)]
    expected = [event.data for event in decode(stream)]
    assert decode_data(*chunks) == expected
    assert decode_data(stream) == expected


def test_fast_path_enforces_the_event_size_limit() -> None:
    with pytest.raises(ProtocolError, match="larger than 2048"):
        decode_data(b"data: " + b"z" * 5000 + b"\n\n", max_event_bytes=2048)


def test_fast_path_reports_invalid_utf8() -> None:
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        decode_data(b"data: ok\n\ndata: \xff\n\n")


def test_a_fault_keeps_the_events_completed_before_it() -> None:
    decoder = SSEDecoder(max_event_bytes=2048)
    with pytest.raises(ProtocolError) as caught:
        decoder.feed_data(b"data: a\n\ndata: b\n\ndata: \xff\n\n")
    assert caught.value.before == ["a", "b"]
    decoder = SSEDecoder(max_event_bytes=2048)
    with pytest.raises(ProtocolError, match="without a line end") as caught:
        decoder.feed_data(b"data: a\n\n" + b"z" * 5000)
    assert caught.value.before == ["a"]
