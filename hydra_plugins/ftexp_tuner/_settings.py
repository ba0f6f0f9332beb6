"""The tuner's config and command line, checked and turned into what the tuning runs: the scenarios, the search
space, the direction. Every problem is found here, before any directory or study is created, and its message names
the key (``hydra.sweeper.search_space.model.optimizer.lr: ...``). Nothing here imports Optuna."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.errors import CompactHydraException

from ftexp.overrides import job_dirname

SPACE_KEY = "hydra.sweeper.search_space"
PARAM_TYPES = ("float", "int", "categorical")
PARAM_FIELDS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
DIRECTIONS = ("minimize", "maximize")
# the overrides the tuner writes into every job itself
SEED_KEY = "seed"
NO_SCENARIO = "default"  # the label and dir name of the one scenario of a tuning without scenario axes
# a value Hydra's override parser reads back as the same string
_PLAIN_STRING = re.compile(r"[\w./:+-]+")


class TuningConfigError(CompactHydraException, ValueError):
    """The tuner's config or command line cannot work; raised before any trial (Hydra prints the message alone)."""


@dataclass(frozen=True)
class SearchParam:
    """One tuned override: ``key`` (``model.optimizer.lr``) and the Optuna distribution it is sampled from."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Scenario:
    """One combination of the scenario axes, tuned in a study of its own. ``index`` fixes its final runs' job
    numbers, so that a resumed tuning finds the same job dirs."""

    index: int
    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        """The study's name: ``schedule=nofts`` (the overrides as the summary table shows a scenario)."""
        return ",".join(self.overrides) or NO_SCENARIO

    @property
    def slug(self) -> str:
        """Its directory name under ``<sweep dir>/tuning/``, by the rule that names job dirs."""
        return job_dirname(self.overrides) if self.overrides else NO_SCENARIO


@dataclass(frozen=True)
class Plan:
    """What the tuning runs: ``fixed`` command-line overrides every job gets, then each scenario's overrides."""

    fixed: tuple[str, ...]
    scenarios: tuple[Scenario, ...]


def check_search_space(raw: Mapping[str, Any]) -> tuple[SearchParam, ...]:
    """The search space as :class:`SearchParam` s, in the config's order; at least one parameter.

    An entry is a mapping with a ``type``. It may sit under its dotted key (``model.optimizer.lr: {type:
    float, ...}``) or nested (``model: {optimizer: {lr: {type: float, ...}}}``), which the command line can reach
    field by field: ``hydra.sweeper.search_space.model.optimizer.lr.high=1e-4``."""
    if not raw:
        raise TuningConfigError(f"{SPACE_KEY} is empty: give at least one override key to tune")
    return tuple(search_param(key, spec) for key, spec in _entries(raw, prefix=""))


def _entries(node: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """``(dotted key, spec)`` for every entry below ``node``."""
    found = []
    for name, value in node.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and value and "type" not in value:
            found += _entries(value, prefix=f"{key}.")
        else:
            found.append((key, value))
    return found


def search_param(key: str, spec: Any) -> SearchParam:
    """One entry of the search space, checked: the fields its type takes, bounds in order, ``log`` with positive
    bounds (and without ``step``: Optuna refuses the pair), choices Optuna can store."""
    where = f"{SPACE_KEY}.{key}"
    if not isinstance(spec, Mapping):
        raise TuningConfigError(
            f"{where}: expected a mapping such as {{type: float, low: 1e-5, high: 1e-2, log: true}}"
        )
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise TuningConfigError(f"{where}.type: must be one of {', '.join(PARAM_TYPES)} (got {kind!r})")
    unknown = sorted(set(spec) - PARAM_FIELDS[kind])
    if unknown:
        raise TuningConfigError(
            f"{where}: {', '.join(unknown)} not taken by type {kind} (it takes {', '.join(sorted(PARAM_FIELDS[kind]))})"
        )
    if kind == "categorical":
        return SearchParam(key, kind, choices=_choices(where, spec.get("choices")))
    low, high = (_bound(where, spec, name, kind) for name in ("low", "high"))
    if low > high:
        raise TuningConfigError(f"{where}: low ({low}) is above high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise TuningConfigError(f"{where}.log: must be true or false (got {log!r})")
    if log and low <= 0:
        raise TuningConfigError(f"{where}: log: true needs a positive low (got {low})")
    step = spec.get("step")
    if step is not None:
        if log:
            raise TuningConfigError(f"{where}: step and log: true exclude each other (Optuna samples one or the other)")
        if not _is_number(step, kind) or step <= 0:
            raise TuningConfigError(f"{where}.step: must be a positive {kind} (got {step!r})")
    return SearchParam(key, kind, low=low, high=high, log=log, step=step)


def _bound(where: str, spec: Mapping[str, Any], name: str, kind: str) -> float:
    value = spec.get(name)
    if value is None:
        raise TuningConfigError(f"{where}.{name}: missing (type {kind} needs low and high)")
    if not _is_number(value, kind):
        raise TuningConfigError(f"{where}.{name}: must be {'an int' if kind == 'int' else 'a number'} (got {value!r})")
    return value


def _is_number(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    return isinstance(value, int | float) and math.isfinite(value)


def _choices(where: str, choices: Any) -> tuple[Any, ...]:
    if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
        raise TuningConfigError(f"{where}.choices: must be a non-empty list (got {choices!r})")
    for choice in choices:
        if choice is not None and not isinstance(choice, bool | int | float | str):
            raise TuningConfigError(f"{where}.choices: {choice!r} is not a number, string, bool or null")
    return tuple(choices)


def check_direction(direction: str | None, optimized_metric: Any) -> str:
    """``minimize`` or ``maximize``: as given, else read from the metric's name (``val_loss``: minimize,
    ``val_acc``: maximize); any other name must come with a direction."""
    if direction is not None:
        if direction not in DIRECTIONS:
            raise TuningConfigError(f"hydra.sweeper.direction: must be minimize, maximize or null (got {direction!r})")
        return direction
    metric = str(optimized_metric)
    if "loss" in metric:
        return "minimize"
    if "acc" in metric:
        return "maximize"
    raise TuningConfigError(
        f"hydra.sweeper.direction: null, and optimized_metric={metric} names neither a loss nor an accuracy: "
        "set hydra.sweeper.direction=minimize or maximize"
    )


def check_counts(n_trials: Any, parallel_trials: Any, n_startup_trials: Any, final_seeds: Any) -> None:
    """The trial budget and batch size are positive ints; the final seeds are ints, none twice."""
    counts = (
        ("n_trials", n_trials, 1),
        ("parallel_trials", parallel_trials, 1),
        ("n_startup_trials", n_startup_trials, 0),
    )
    for name, value, least in counts:
        if not _is_number(value, "int") or value < least:
            raise TuningConfigError(f"hydra.sweeper.{name}: must be an int >= {least} (got {value!r})")
    seeds = list(final_seeds)
    if not all(_is_number(seed, "int") for seed in seeds) or len(set(seeds)) != len(seeds):
        raise TuningConfigError(f"hydra.sweeper.final_seeds: must be distinct ints (got {seeds!r})")


def plan(
    scenarios: Mapping[str, Sequence[Any]], arguments: Sequence[str], space: Sequence[SearchParam], parser: Any
) -> Plan:
    """The scenarios (the product of the axes, in order) and the command-line overrides every job gets.

    A command-line comma list (``schedule=nofts,implicit``) is a scenario axis, replacing the config's axis of the
    same key, as a command-line value replaces a sweep file's in Hydra's basic sweeper; a single value of a scenario
    key (``schedule=explicit``) tunes that scenario only. ``seed`` and the tuned keys are the tuner's to set.
    ``parser`` is Hydra's ``OverridesParser``."""
    axes = {str(key): _axis(str(key), values) for key, values in scenarios.items()}
    tuned = {param.key for param in space}
    clash = sorted(tuned & set(axes))
    if clash:
        raise TuningConfigError(f"hydra.sweeper.scenarios: {', '.join(clash)} is tuned (in {SPACE_KEY}) as well")
    fixed = []
    for override in parser.parse_overrides(list(arguments)):
        key = override.key_or_group
        if key == SEED_KEY:
            raise TuningConfigError(
                f"{override.input_line}: the tuner sets every job's seed (hydra.sweeper.tuning_seed for the trials, "
                "hydra.sweeper.final_seeds for the final runs)"
            )
        if key in tuned:
            raise TuningConfigError(f"{override.input_line}: {key} is tuned ({SPACE_KEY}.{key}); leave it out here")
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise TuningConfigError(f"{override.input_line}: a scenario axis is a comma list of values")
            element = override.get_key_element()
            axes[key] = [f"{element}={value}" for value in override.sweep_string_iterator()]
        elif key in axes:
            axes[key] = [f"{override.get_key_element()}={override.get_value_element_as_str()}"]
        else:
            fixed.append(override.input_line)
    products = itertools.product(*axes.values())
    return Plan(tuple(fixed), tuple(Scenario(index, tuple(combo)) for index, combo in enumerate(products)))


def _axis(key: str, values: Any) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise TuningConfigError(f"hydra.sweeper.scenarios.{key}: must be a non-empty list of values (got {values!r})")
    return [f"{key}={override_value(value)}" for value in values]


def override_value(value: Any) -> str:
    """A value as a command-line override writes it, so that Hydra reads back the same value and type. A float is
    written to 4 significant digits: the trial runs this value, and the final runs write the best trial's params the
    same way, so they run exactly the value the trial ran, and job dirs and summary labels stay readable
    (``model.optimizer.lr=0.0003162``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.4g}"
        return text if any(c in text for c in ".enia") else f"{text}.0"  # 100.0, not the int 100
    if isinstance(value, int) or (_PLAIN_STRING.fullmatch(str(value)) and not _reads_as_other_type(str(value))):
        return str(value)
    return quoted(str(value))


def quoted(text: str) -> str:
    """``text`` as a quoted override value, which Hydra's parser reads as this string whatever it holds (``=`` in a
    path such as ``tuning/schedule=nofts``, commas, spaces)."""
    return "'" + text.replace("'", "\\'") + "'"


def _reads_as_other_type(text: str) -> bool:
    """Whether Hydra would read this string as a number, bool or null."""
    if text.lower() in ("true", "false", "null", "inf", "-inf", "+inf", "nan"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def param_overrides(space: Sequence[SearchParam], params: Mapping[str, Any]) -> list[str]:
    """The overrides that set a trial's params (``model.optimizer.lr=0.001``), in the search space's order."""
    return [f"{param.key}={override_value(params[param.key])}" for param in space]
