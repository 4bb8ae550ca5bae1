"""Input checks that run before any I/O and name exactly what is wrong."""

from __future__ import annotations

__all__ = [
    "Option",
    "check_model",
    "check_options",
]

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._errors import InvalidRequest


def check_model(provider: str, model: object, models: Sequence[str], any_model: bool) -> str:
    """Resolve ``None`` to the provider's default and reject unknown models."""
    if model is None:
        if not models:
            raise InvalidRequest(f"provider {provider!r} needs a model name")
        return models[0]
    if not isinstance(model, str) or not model:
        raise InvalidRequest(f"model must be a non-empty string, got {model!r}")
    if not any_model and model not in models:
        raise InvalidRequest(
            f"provider {provider!r} does not offer model {model!r}; it offers: {', '.join(models)}"
        )
    return model


class Option:
    """One keyword a provider accepts: its type, and how to read it from text."""

    # A plain class, not a dataclass: ``dataclasses`` costs ~20 ms to import.
    __slots__ = ("check", "help", "kind", "maximum", "minimum", "name")

    def __init__(
        self,
        name: str,
        kind: type,
        help: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        check: Callable[[Any], bool] | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.help = help
        self.minimum = minimum
        self.maximum = maximum
        self.check = check

    def __repr__(self) -> str:
        return f"Option({self.name!r}, {self.kind.__name__})"

    def coerce(self, value: object) -> Any:
        """Validate ``value`` (text from a CLI is parsed) and return it typed."""
        if isinstance(value, str) and self.kind is not str:
            value = self._parse(value)
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.kind is list:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self._error(value, _KIND_NAMES[list])
        elif not isinstance(value, self.kind) or isinstance(value, bool) != (self.kind is bool):
            raise self._error(value, _KIND_NAMES[self.kind])
        if isinstance(value, float) and not math.isfinite(value):
            raise self._error(value, "a finite number")
        if self.minimum is not None and value < self.minimum:  # type: ignore[operator]
            raise self._error(value, f"at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:  # type: ignore[operator]
            raise self._error(value, f"at most {self.maximum:g}")
        if self.check is not None and not self.check(value):
            raise self._error(value, self.help)
        return value

    def within(self, provider: str, value: Any) -> None:
        """Check ``value``, already of its type, against this provider's bounds."""
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidRequest(
                f"{self.name}: provider {provider!r} takes {self.help}, got {value!r}"
            )

    def _parse(self, text: str) -> object:
        try:
            if self.kind is float:
                return float(text)
            if self.kind is int:
                return int(text)
            if self.kind is bool:
                lowered = text.lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
        except ValueError:
            pass
        if self.kind is list:
            return text
        raise self._error(text, _KIND_NAMES[self.kind])

    def _error(self, value: object, expected: str) -> InvalidRequest:
        return InvalidRequest(f"option {self.name} must be {expected}, got {value!r}")


_KIND_NAMES: dict[type, str] = {
    float: "a number",
    int: "a whole number",
    bool: "true or false",
    str: "a string",
    list: "a string or a list of strings",
}


def check_options(
    provider: str, options: Mapping[str, object], known: Mapping[str, Option]
) -> dict[str, Any]:
    """Reject unknown keywords and bad values; return the options typed."""
    checked: dict[str, Any] = {}
    for name, value in options.items():
        spec = known.get(name)
        if spec is None:
            accepted = ", ".join(sorted(known)) or "none"
            raise InvalidRequest(
                f"provider {provider!r} does not accept option {name!r}; it accepts: {accepted}"
            )
        checked[name] = None if value is None else spec.coerce(value)
    return checked
