"""Validation helpers: turn a composed config section into a checked dataclass.

A schema is a plain dataclass whose fields have no defaults (the YAML files in ``configs/``
are the one place defaults are written). Value ranges are declared as a table, after
scikit-learn's ``_parameter_constraints``::

    @dataclass
    class AugmentSettings(Checked):
        shift: float
        rotation: float
        constraints: ClassVar[Constraints] = {"shift": Interval(0, None), "rotation": Interval(0, 180)}

:class:`Checked` runs the table (and those of the schemas inside it) in ``validate()``;
cross-field rules go in ``check()`` with :func:`require`. :func:`validate_section` merges the
YAML section onto the schema, so unknown keys, missing keys and wrong types are caught too,
and reports any problem as a one-line :class:`ConfigError` naming the full key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from mnistfw.errors import ConfigError

T = TypeVar("T")


def require(ok: bool, key: str, message: str) -> None:
    """Raise ``ConfigError("<key>: <message>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


class Constraint:
    """One rule for one field: ``check(value)`` returns None or what is wrong."""

    def check(self, value: Any) -> str | None:
        raise NotImplementedError


class Interval(Constraint):
    """A number in ``[low, high]``; ``None`` bounds are open-ended, ``open_low``/``open_high`` exclude them.

    ``none_ok`` also accepts null (meaning "off" or "the default"), ``integer`` wants an int.
    """

    def __init__(
        self,
        low: float | None,
        high: float | None,
        *,
        open_low: bool = False,
        open_high: bool = False,
        integer: bool = False,
        none_ok: bool = False,
        meaning_of_none: str = "",
        unit: str = "",
    ) -> None:
        self.unit = unit
        self.low, self.high = low, high
        self.open_low, self.open_high = open_low, open_high
        self.integer, self.none_ok, self.meaning_of_none = integer, none_ok, meaning_of_none

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            text = f"{kind} in {left}{self.low:g}, {self.high:g}{right}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.open_low else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.open_high else '<='} {self.high:g}"
        else:
            text = kind
        if self.unit:
            text += f" {self.unit}"
        if self.none_ok:
            text += f" or null{f' ({self.meaning_of_none})' if self.meaning_of_none else ''}"
        return text

    def check(self, value: Any) -> str | None:
        if value is None:
            return None if self.none_ok else f"must be {self.describe()}, got null"
        number_types = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types) or not math.isfinite(value):
            return f"must be {self.describe()}, got {value!r}"
        too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        return f"must be {self.describe()}, got {value!r}" if too_low or too_high else None


class Options(Constraint):
    """One of a fixed set of values."""

    def __init__(self, *choices: Any, none_ok: bool = False) -> None:
        self.choices = choices
        self.none_ok = none_ok

    def check(self, value: Any) -> str | None:
        if value is None and self.none_ok:
            return None
        if value in self.choices:
            return None
        shown = ", ".join(str(c) for c in self.choices) + (" or null" if self.none_ok else "")
        return f"'{value}' is not one of {shown}"


class Each(Constraint):
    """Every element of a list satisfies ``inner``; ``min_len`` elements at least."""

    def __init__(self, inner: Constraint, min_len: int = 0) -> None:
        self.inner, self.min_len = inner, min_len

    def check(self, value: Any) -> str | None:
        if value is None or not isinstance(value, Sequence) or isinstance(value, str):
            return f"must be a list, got {value!r}"
        if len(value) < self.min_len:
            return f"needs at least {self.min_len} element(s), got {list(value)}"
        for item in value:
            problem = self.inner.check(item)
            if problem:
                return f"{problem} (in {list(value)})"
        return None


Constraints = Mapping[str, Constraint]


class Checked:
    """Mixin for schema dataclasses: :meth:`validate` checks :attr:`constraints`, nested schemas, then :meth:`check`."""

    constraints: ClassVar[Constraints] = {}

    def validate(self, prefix: str = "") -> None:
        """Check this object and the schemas inside it; errors name the full dotted key."""
        dot = f"{prefix}." if prefix else ""
        for key, rule in self.constraints.items():
            problem = rule.check(getattr(self, key))
            require(problem is None, f"{dot}{key}", problem or "")
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Checked):
                value.validate(f"{dot}{f.name}")
        try:
            self.check()
        except ConfigError as exc:
            raise ConfigError(f"{dot}{exc}") from None

    def check(self) -> None:
        """Cross-field rules and normalisation (use :func:`require` with the field's own name)."""


def validate_section(section: Any, schema: type[T], prefix: str, context: str = "") -> T:
    """Check ``section`` (a DictConfig/dict) against ``schema`` and return the schema object.

    ``prefix`` is the section's key in the full config (``model``, ``data``, ...), used in
    messages; ``context`` says which option was chosen (``model=lightning_mlp``).
    """
    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section, resolve=True)
    where = f" for {context}" if context else ""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), section or {})
        obj = OmegaConf.to_object(merged)
    except ConfigError as exc:  # raised by a schema's own __post_init__
        msg = str(exc)
        raise ConfigError(f"{prefix}.{msg}" if prefix and not msg.startswith(prefix) else msg) from None
    except MissingMandatoryValue as exc:
        key = f"{prefix}.{exc.full_key}" if exc.full_key else prefix
        raise ConfigError(f"{key}: missing{where}; give it a value (configs/ holds the defaults)") from None
    except ConfigKeyError as exc:
        key = f"{prefix}.{exc.full_key}" if exc.full_key else prefix
        allowed = ", ".join(_field_names(schema, str(exc.full_key or "")))
        raise ConfigError(f"{key}: unknown key{where}; allowed keys here: {allowed}") from None
    except ValidationError as exc:
        key = f"{prefix}.{exc.full_key}" if exc.full_key else prefix
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{key}: {first}{where}") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{prefix}: {str(exc).splitlines()[0]}{where}") from None
    if isinstance(obj, Checked):
        obj.validate(prefix)
    return obj  # type: ignore[return-value]


def as_plain(settings: Any) -> dict[str, Any]:
    """A validated schema object back as plain data (for JSON files and logs)."""
    return dataclasses.asdict(settings)


def _field_names(schema: type, full_key: str) -> list[str]:
    """Names of the fields at the level where ``full_key`` was rejected."""
    parts = [p for p in full_key.split(".") if p][:-1]
    cls: Any = schema
    for part in parts:
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        f = fields.get(part)
        if f is None or not isinstance(f.type, type) or not dataclasses.is_dataclass(f.type):
            inner = _resolve_type(cls, part)
            if inner is None:
                break
            cls = inner
            continue
        cls = f.type
    return sorted(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []


def _resolve_type(cls: type, name: str) -> type | None:
    """The dataclass type of field ``name`` of ``cls`` (annotations may be strings)."""
    import typing

    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - only used to list allowed keys
        return None
    hint = hints.get(name)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None
