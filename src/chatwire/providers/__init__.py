"""The provider registry: name -> ``Provider``.

Built-in providers are imported on first use, so ``import chatwire`` stays
fast. Other packages add providers through the ``chatwire.providers`` entry
point group, each entry naming a ``Provider`` (a class or an instance) or a
module in the seed's style, which is served through ``ModuleProvider``.
"""

from __future__ import annotations

__all__ = [
    "BUILTIN",
    "DEFAULT",
    "Provider",
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
from ._base import ModuleProvider, Provider

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


def get(name: str) -> Provider:
    """The provider called ``name``."""
    if name in BUILTIN:
        module = importlib.import_module(f"{__name__}.{name}")
        builtin: Provider = module.provider
        return builtin
    entry = _plugins().get(name)
    if entry is None:
        raise InvalidRequest(f"unknown provider {name!r}; known: {', '.join(names())}")
    return _as_provider(entry.load(), name)


def resolve(provider: object) -> Provider:
    """A provider from a ``Provider``, a provider module, a name, or ``None`` (the default)."""
    if provider is None:
        return get(DEFAULT)
    if isinstance(provider, str):
        return get(provider.strip())
    if isinstance(provider, (Provider, ModuleType)):
        return _as_provider(provider)
    raise InvalidRequest(
        f"provider must be a provider, a provider module or its name, got {type(provider).__name__}"
    )


def resolve_all(provider: object) -> list[Provider]:
    """The providers to try, in order: a list, ``"a,b,c"``, one provider, or ``None``."""
    if isinstance(provider, str) and "," in provider:
        provider = [name for name in provider.split(",") if name.strip()]
    if isinstance(provider, (list, tuple)):
        if not provider:
            raise InvalidRequest("the list of providers is empty")
        return [resolve(entry) for entry in provider]
    return [resolve(provider)]


def _as_provider(found: object, name: str | None = None) -> Provider:
    """``found`` as a provider; a module-style plugin is called by ``name`` (its entry's)."""
    if isinstance(found, type) and issubclass(found, Provider):
        found = found()
    if isinstance(found, Provider):
        return found
    if isinstance(found, ModuleType):
        builtin = getattr(found, "provider", None)
        if isinstance(builtin, Provider):
            return builtin
        missing = [attr for attr in _REQUIRED if not hasattr(found, attr)]
        if not missing:
            return ModuleProvider(found, name)
        what = name or found.__name__
        raise InvalidRequest(f"{what!r} is not a chatwire provider (missing: {', '.join(missing)})")
    raise InvalidRequest(f"{name!r} is not a chatwire provider (not a Provider or a module)")


def __getattr__(name: str) -> ModuleType:
    if name in BUILTIN:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
