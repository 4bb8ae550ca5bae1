"""No input makes request checking raise anything but chatwire's own errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chatwire import ChatwireError
from chatwire._models import request_from
from chatwire.providers import forefront, local, openai
from chatwire.providers._base import split_request

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_messages = st.one_of(
    _json,
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "system", "developer", "tool", "bot", ""]) | _json},
            optional={"content": st.text(max_size=20) | _json},
        ),
        max_size=4,
    ),
)


@given(_messages)
def test_messages_are_accepted_or_rejected_cleanly(messages: Any) -> None:
    try:
        checked = request_from({"messages": messages}).messages
    except ChatwireError:
        return
    assert [m.role for m in checked] == [m["role"] for m in messages]
    assert all(m.content is not None or m.tool_calls for m in checked)


@given(
    provider=st.sampled_from([forefront, local, openai]),
    model=st.none() | st.text(max_size=12) | _json,
    options=st.dictionaries(
        st.sampled_from(
            [
                "temperature",
                "max_tokens",
                "top_p",
                "stop",
                "seed",
                "timeout",
                "base_url",
                "nonsense",
            ]
        ),
        _json | st.text(max_size=12),
        max_size=4,
    ),
)
def test_whole_requests_are_accepted_or_rejected_cleanly(
    provider: Any, model: Any, options: dict[str, Any]
) -> None:
    try:
        request, rest = split_request(model, [{"role": "user", "content": "x"}], False, options)
        name, checked = provider.provider.check(request, rest)
    except ChatwireError:
        return
    # Accepted: the model resolved to a name, every option is one the provider knows, and
    # every request field set is one it serves.
    assert isinstance(name, str)
    assert name
    assert set(checked) <= set(provider.options)
    served = {"model", "stream"} | set(provider.provider.fields)
    assert {field for field, _ in request.set_fields()} <= served
