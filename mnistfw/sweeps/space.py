"""Search spaces in the Hydra Optuna sweeper's syntax, turned into Optuna distributions.

``hydra.sweeper.params`` (and sweep overrides given on the command line with ``-m``) use
Hydra's override grammar and mean what they mean in the published ``hydra-optuna-sweeper``:

=====================================  ==============================================
``interval(0.1, 0.5)``                 float uniform in [0.1, 0.5]
``int(interval(1, 4))``                integer uniform in [1, 4]
``tag(log, interval(1e-4, 1e-1))``     float, log-uniform (also ``int(...)`` inside)
``range(1, 4)``                        integers 1, 2, 3, 4: the stop is *included*
                                       (unlike Hydra's basic sweeper and Python)
``range(32, 512, 32)``                 integers 32, 64, ..., 512
``range(-5.5, 5.5, step=0.5)``         floats -5.5, -5.0, ..., 5.5; a stop off the grid
                                       is lowered onto it (``range(0, 1, 0.3)``: 0 .. 0.9)
``choice(adam, sgd)`` / ``adam,sgd``   categorical; lists and mappings are allowed:
                                       ``choice([128], [256, 128])``
``shuffle(...)``                       categorical over the listed values
anything else (``trainer.max_epochs=3``)  a fixed override applied to every trial
=====================================  ==============================================

A key the config lacks is searched with Hydra's ``+``: ``'+w=interval(0, 1)'`` (Optuna records
``w``; each trial gets ``+w=...``).

``hydra.sweeper.list_params`` builds list values element by element, the Keras-Tuner
"number of layers, units per layer" space::

    list_params:
      model.hidden:
        length: range(1, 3)          # 1-3 elements
        item: range(32, 512, 32)     # each element drawn on its own
        prefix: []                   # fixed leading elements (e.g. [784] for input sizes)
        suffix: []

Optuna records ``model.hidden.length``, ``model.hidden.0``, ``model.hidden.1``, ...; the
trial's override is ``model.hidden=[256,128]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mnistfw.errors import ConfigError

#: Kinds of a parameter: a float or int range, or a list of categorical choices.
FLOAT, INT, CATEGORICAL = "float", "int", "categorical"


@dataclass
class Param:
    """One searched parameter: how Optuna samples it and how a value becomes override text."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    #: Categorical: values as Optuna stores them (str/int/float/bool) ...
    choices: list[Any] = field(default_factory=list)
    #: ... and as override text, position by position.
    rendered: list[str] = field(default_factory=list)
    #: Hydra's ``+`` / ``++`` in front of the key of each trial's override (a key the config lacks).
    prefix: str = ""

    def distribution(self) -> Any:
        """The ``optuna.distributions`` object for this parameter."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == FLOAT:
            return FloatDistribution(float(self.low), float(self.high), log=self.log,  # type: ignore[arg-type]
                                     step=None if self.step is None else float(self.step))
        if self.kind == INT:
            return IntDistribution(int(self.low), int(self.high), log=self.log,  # type: ignore[arg-type]
                                   step=int(self.step or 1))
        return CategoricalDistribution(self.choices)

    def suggest(self, trial: Any, name: str | None = None) -> Any:
        """Draw (or, for a retried trial, read back) this parameter's value on ``trial``."""
        name = name or self.name
        if self.kind == FLOAT:
            return trial.suggest_float(name, float(self.low), float(self.high), log=self.log,  # type: ignore[arg-type]
                                       step=None if self.step is None else float(self.step))
        if self.kind == INT:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log,  # type: ignore[arg-type]
                                     step=int(self.step or 1))
        return trial.suggest_categorical(name, self.choices)

    def render(self, value: Any) -> str:
        """``value`` as it goes on the right of ``key=`` in a Hydra override."""
        if self.kind == CATEGORICAL:
            for stored, text in zip(self.choices, self.rendered):
                if stored == value and type(stored) is type(value):
                    return text
            return render_value(value)
        if self.kind == INT:
            return str(int(value))
        return render_float(float(value))

    def grid(self) -> list[Any]:
        """Every value, for ``GridSampler`` (only discrete parameters have one)."""
        if self.kind == CATEGORICAL:
            return list(self.choices)
        if self.kind == INT:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))  # type: ignore[arg-type]
        if self.step is None:
            raise ConfigError(
                f"hydra.sweeper.params.{self.name}: GridSampler needs discrete values; "
                "use range(a, b, step) or choice(...) instead of interval(...)"
            )
        n = int(round((float(self.high) - float(self.low)) / float(self.step)))  # type: ignore[arg-type]
        return [float(render_float(float(self.low) + i * float(self.step))) for i in range(n + 1)]  # type: ignore[arg-type]


@dataclass
class ListParam:
    """A list-valued key whose length and elements are searched (``list_params``)."""

    name: str
    length: Param
    item: Param
    prefix: list[Any] = field(default_factory=list)
    suffix: list[Any] = field(default_factory=list)

    def suggest(self, trial: Any) -> str:
        """Draw the length, then each element; return the list as override text."""
        n = int(self.length.suggest(trial, f"{self.name}.length"))
        items = [self.item.suggest(trial, f"{self.name}.{i}") for i in range(n)]
        parts = [render_value(v) for v in self.prefix]
        parts += [self.item.render(v) for v in items]
        parts += [render_value(v) for v in self.suffix]
        return "[" + ",".join(parts) + "]"


@dataclass
class SearchSpace:
    """Everything a trial needs to become a list of Hydra overrides."""

    params: dict[str, Param] = field(default_factory=dict)
    list_params: dict[str, ListParam] = field(default_factory=dict)
    #: Overrides applied to every trial, in the order given (non-sweep arguments, fixed params).
    fixed: list[str] = field(default_factory=list)

    def suggest(self, trial: Any) -> list[str]:
        """Sample ``trial``'s values; return the full override list for its job."""
        overrides = list(self.fixed)
        for name, param in self.params.items():
            overrides.append(f"{param.prefix}{name}={param.render(param.suggest(trial))}")
        for name, lparam in self.list_params.items():
            overrides.append(f"{name}={lparam.suggest(trial)}")
        return overrides

    def grid(self) -> dict[str, list[Any]]:
        """The search space as ``GridSampler`` wants it: every value of every parameter."""
        if self.list_params:
            names = ", ".join(self.list_params)
            raise ConfigError(f"hydra.sweeper.list_params ({names}): GridSampler cannot search list lengths; "
                              "use choice([..], [..]) in params instead")
        return {name: param.grid() for name, param in self.params.items()}

    def is_empty(self) -> bool:
        return not self.params and not self.list_params


def render_float(value: float) -> str:
    """A float as short override text that still reads back as a float (``0.3``, ``1e-05``)."""
    text = format(value, ".12g")
    if not any(c in text for c in ".eEn"):
        text += ".0"
    return text


def render_value(value: Any) -> str:
    """Any plain value (str, number, bool, list, dict, None) as Hydra override text."""
    from hydra.core.override_parser.types import Transformer
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, float):
        return render_float(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return Transformer.str(value)


def _override_text(key: str, value: Any) -> str:
    """A ``params`` entry as one override line."""
    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}={render_value(value)}"


def _param_from_override(name: str, override: Any, where: str) -> Param:
    """Turn one parsed sweep override into a :class:`Param`; ``where`` names it in errors."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer

    value = override.value()
    if isinstance(value, IntervalSweep):
        start, end = value.start, value.end
        is_int = isinstance(start, int) and isinstance(end, int)
        if start is None or end is None or not start < end:
            raise ConfigError(f"{where}: interval needs start < end, got interval({start}, {end})")
        log = "log" in value.tags
        if log and start <= 0:
            raise ConfigError(f"{where}: tag(log, ...) needs a positive start, got {start}")
        return Param(name, INT if is_int else FLOAT, low=start, high=end, log=log)
    if isinstance(value, RangeSweep) and not value.shuffle:
        return _range_param(name, value, where)
    if isinstance(value, (ChoiceSweep, RangeSweep)):
        raw = list(override.sweep_iterator(transformer=Transformer.identity))
        choices: list[Any] = []
        rendered: list[str] = []
        for item in raw:
            text = render_value(item)
            # Optuna stores plain str/int/float/bool; lists, mappings and quoted strings by their text.
            stored = item if isinstance(item, (str, int, float, bool)) else text
            if stored in choices:
                continue
            choices.append(stored)
            rendered.append(text)
        if not choices:
            raise ConfigError(f"{where}: choice() needs at least one value")
        return Param(name, CATEGORICAL, choices=choices, rendered=rendered)
    raise ConfigError(f"{where}: '{override.input_line}' is not supported by the Optuna sweeper; "
                      "use interval(), int(interval()), range(), choice() or tag(log, ...)")


def _range_param(name: str, value: Any, where: str) -> Param:
    """``range(start, stop[, step])`` as the published sweeper reads it: an int or float
    distribution from ``start`` to ``stop`` *inclusive*, in steps of ``step``."""
    start, stop, step = value.start, value.stop, value.step
    shown = f"range({start}, {stop}, {step})"
    if start is None or stop is None or step is None or not step > 0 or stop < start:
        raise ConfigError(f"{where}: {shown} needs start <= stop and a step > 0 (the stop is included)")
    n = math.floor((stop - start) / step + 1e-9)  # grid points after start; an off-grid stop is lowered
    if all(isinstance(v, int) for v in (start, stop, step)):
        return Param(name, INT, low=start, high=start + n * step, step=step, log="log" in value.tags and step == 1)
    low = float(render_float(float(start)))
    return Param(name, FLOAT, low=low, high=float(render_float(low + n * float(step))), step=float(step))


def _parse_one(text: str, where: str) -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(text)
    except HydraException as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{where}: cannot parse '{text}': {first}") from None


def build_search_space(
    params: Mapping[str, Any] | None,
    arguments: Sequence[str] = (),
    list_params: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """Combine ``hydra.sweeper.params``, ``hydra.sweeper.list_params`` and the command-line ``arguments``.

    Later entries win over earlier ones for the same key (in that order), so ``model.lr=0.01``
    on the command line fixes a parameter that the config searches, and
    ``model.lr='interval(..)'`` with ``-m`` searches one the config fixes.
    """
    entries: dict[str, tuple[str, Any]] = {}

    def put(key: str, entry: tuple[str, Any]) -> None:
        bare = key.lstrip("+~")
        entries.pop(bare, None)  # re-insert so the latest position counts too
        entries[bare] = entry

    for k, v in (params or {}).items():
        _add_line(put, _override_text(str(k), v), f"hydra.sweeper.params.{k}")
    for k, spec in (list_params or {}).items():
        put(str(k), ("list", _list_param(str(k), spec)))
    for a in arguments:
        _add_line(put, str(a), f"command-line override '{a}'")

    space = SearchSpace()
    for key, (kind, payload) in entries.items():
        if kind == "param":
            space.params[key] = payload
        elif kind == "list":
            space.list_params[key] = payload
        else:
            space.fixed.append(payload)
    return space


def _add_line(put: Callable[[str, tuple[str, Any]], None], text: str, where: str) -> None:
    override = _parse_one(text, where)
    key = override.get_key_element()
    if override.is_sweep_override():
        if override.value_type is not None and override.value_type.name == "GLOB_CHOICE_SWEEP":
            raise ConfigError(f"{where}: glob() sweeps are not supported by the Optuna sweeper; "
                              "list the options with choice(...)")
        param = _param_from_override(key.lstrip("+~"), override, where)
        param.prefix = key[: len(key) - len(key.lstrip("+"))]
        put(key, ("param", param))
    else:
        put(key, ("fixed", override.input_line))


def _list_param(key: str, spec: Any) -> ListParam:
    from omegaconf import OmegaConf

    where = f"hydra.sweeper.list_params.{key}"
    if OmegaConf.is_config(spec):
        spec = OmegaConf.to_container(spec, resolve=True)
    if not isinstance(spec, Mapping) or "length" not in spec or "item" not in spec:
        raise ConfigError(f"{where}: needs 'length' and 'item', e.g. {{length: range(1, 3), item: choice(64, 128)}}")
    unknown = set(spec) - {"length", "item", "prefix", "suffix"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                          "allowed: length, item, prefix, suffix")

    def sub(part: str) -> Param:
        text = _override_text(f"{key}.{part}", spec[part])
        override = _parse_one(text, f"{where}.{part}")
        if not override.is_sweep_override():
            value = override.value()
            return Param(f"{key}.{part}", CATEGORICAL, choices=[value], rendered=[render_value(value)])
        return _param_from_override(f"{key}.{part}", override, f"{where}.{part}")

    length = sub("length")
    if length.kind == FLOAT or (length.kind == CATEGORICAL and not all(isinstance(c, int) for c in length.choices)):
        raise ConfigError(f"{where}.length: must be integers, e.g. range(1, 3) or int(interval(1, 3))")
    lows = [length.low] if length.kind == INT else length.choices
    if min(lows) < 0:  # type: ignore[type-var,operator]
        raise ConfigError(f"{where}.length: must be >= 0")
    prefix = list(spec.get("prefix") or [])
    suffix = list(spec.get("suffix") or [])
    return ListParam(key, length=length, item=sub("item"), prefix=prefix, suffix=suffix)


def load_custom_search_space(path: str | None) -> Callable[[Any, Any], Any] | None:
    """The function named by ``custom_search_space`` (``package.module.function``), or None."""
    if not path:
        return None
    from hydra.utils import get_method

    try:
        return get_method(path)
    except Exception as exc:  # noqa: BLE001 - any import problem becomes one line
        raise ConfigError(f"hydra.sweeper.custom_search_space: cannot import '{path}' ({exc})") from None


def is_finite_number(value: Any) -> bool:
    """True for an int/float that is neither NaN nor infinite."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
