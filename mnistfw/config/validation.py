"""Validation helpers: turn a composed config section into a checked dataclass.

Every schema is a plain dataclass; ``__post_init__`` checks values with :func:`require`.
:func:`validate_section` merges the YAML section onto the schema, so unknown keys and wrong
types are caught too, and reports any problem as a one-line :class:`ConfigError` that names
the full key and what is allowed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from mnistfw.errors import ConfigError

T = TypeVar("T")


def require(ok: bool, key: str, message: str) -> None:
    """Raise ``ConfigError("<key>: <message>")`` unless ``ok``; used in schema ``__post_init__``."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


class _Prefixed(Exception):
    pass


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
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(f"{prefix}.{msg}" if prefix and not msg.startswith(prefix) else msg) from None
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


def _field_names(schema: type, full_key: str) -> list[str]:
    """Names of the fields at the level where ``full_key`` was rejected."""
    parts = [p for p in full_key.split(".") if p][:-1]
    cls: Any = schema
    for part in parts:
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        f = fields.get(part)
        if f is None:
            break
        inner = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if not dataclasses.is_dataclass(inner):
            break
        cls = type(inner)
    return sorted(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []
