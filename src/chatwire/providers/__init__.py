"""The provider registry: name -> provider module.

Built-in providers are imported on first use, so ``import chatwire`` stays
fast. Other packages add providers through the ``chatwire.providers`` entry
point group, each entry naming a module that follows the same contract.
"""

from __future__ import annotations

__all__ = [
    "BUILTIN",
    "DEFAULT",
    "forefront",
    "get",
    "local",
    "names",
    "openai",
    "resolve",
    "resolve_all",
]

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .._errors import InvalidRequest

if TYPE_CHECKING:
    from . import forefront, local, openai

BUILTIN = ("local", "forefront", "openai")
# The embedded model needs no network and no key, so it is the default.
DEFAULT = "local"
ENTRY_POINT_GROUP = "chatwire.providers"
_REQUIRED = ("model", "supports_stream", "needs_auth", "_create_completion")


def _plugins() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every provider name: built-in ones first, then plugins."""
    return list(BUILTIN) + sorted(set(_plugins()) - set(BUILTIN))


def get(name: str) -> ModuleType:
    """The provider module called ``name``."""
    if name in BUILTIN:
        return importlib.import_module(f"{__name__}.{name}")
    entry = _plugins().get(name)
    if entry is None:
        raise InvalidRequest(f"unknown provider {name!r}; known: {', '.join(names())}")
    return _checked(entry.load(), name)


def resolve(provider: object) -> ModuleType:
    """A provider module from a module, a name, or ``None`` (the default)."""
    if provider is None:
        return get(DEFAULT)
    if isinstance(provider, str):
        return get(provider.strip())
    if isinstance(provider, ModuleType):
        return _checked(provider, provider.__name__)
    raise InvalidRequest(
        f"provider must be a provider module or its name, got {type(provider).__name__}"
    )


def resolve_all(provider: object) -> list[ModuleType]:
    """The providers to try, in order: a list, ``"a,b,c"``, one provider, or ``None``."""
    if isinstance(provider, str) and "," in provider:
        provider = [name for name in provider.split(",") if name.strip()]
    if isinstance(provider, (list, tuple)):
        if not provider:
            raise InvalidRequest("the list of providers is empty")
        return [resolve(entry) for entry in provider]
    return [resolve(provider)]


def _checked(module: object, name: str) -> ModuleType:
    missing = [attr for attr in _REQUIRED if not hasattr(module, attr)]
    if not isinstance(module, ModuleType) or missing:
        raise InvalidRequest(
            f"{name!r} is not a chatwire provider (missing: {', '.join(missing) or 'module'})"
        )
    return module


def __getattr__(name: str) -> ModuleType:
    if name in BUILTIN:
        return get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
