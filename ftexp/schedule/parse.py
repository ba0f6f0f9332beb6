"""Turn what a user wrote (YAML path, dict, OmegaConf node) into a :class:`Schedule`, and resolve it to names.

Every check here runs before a Trainer exists, and every failure is a :class:`ScheduleError` naming the phase,
the key and the value.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ftexp.schedule.errors import ScheduleError
from ftexp.schedule.model import ClassSpec, LRSchedulerSpec, OptimizerSpec, Phase, PhaseGroup, Schedule
from ftexp.schedule.suggest import no_match_hint
from ftexp.schedule.wrapped_names import WrappedNames
from ftexp.schedule.yaml_io import load_schedule_yaml

PHASE_KEYS = ("params", "max_transition_epoch", "lr", "lr_decay", "groups", "new_lr_scheduler", "new_optimizer")
# a group of a phase as a run saves it (the resolved form of lr_decay)
GROUP_KEYS = ("name", "lr", "params")
LR_SCHEDULER_KEYS = ("lr_scheduler_init", "pl_lrs_cfg", "init_pg_lrs", "use_current_optimizer_pg_lrs")
# LRSchedulerConfig's fields; reduce_on_plateau is accepted as FTS schedules write it and checked against the class
PL_LRS_CFG_KEYS = ("interval", "frequency", "name", "monitor", "strict", "reduce_on_plateau")
CLASS_SPEC_KEYS = ("class_path", "init_args")


def to_plain_container(obj: Any) -> Any:
    """OmegaConf nodes (what Hydra passes) become plain dicts/lists; anything else is returned unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # omegaconf comes with hydra-core; tolerate its absence for library-only use
        return obj
    if isinstance(obj, DictConfig | ListConfig):
        return OmegaConf.to_container(obj, resolve=True)
    return obj


def load_schedule(ft_schedule: str | Path | Mapping | Any) -> Schedule:
    """Parse a schedule from a YAML path, a mapping or an OmegaConf ``DictConfig`` (names not yet resolved); a
    :class:`Schedule` is taken as it is (a run hands its callback the schedule it already resolved)."""
    if isinstance(ft_schedule, Schedule):
        return ft_schedule
    if isinstance(ft_schedule, str | Path):
        path = Path(ft_schedule)
        if not path.is_file():
            return parse_schedule(load_schedule_yaml(ft_schedule), source=str(ft_schedule))  # raises, naming it
        return _parsed_file(str(ft_schedule), hashlib.sha256(path.read_bytes()).hexdigest())
    return parse_schedule(to_plain_container(ft_schedule), source="<dict>")


@functools.lru_cache(maxsize=32)
def _parsed_file(source: str, content_sha256: str) -> Schedule:
    """A schedule file is parsed once per process while its content is unchanged, so the start-up config check and
    the run share one object (nothing mutates a Schedule: frozen dataclasses, and every consumer copies init_args
    before use); an edited file has another digest and is parsed again. Reading the bytes is cheap, parsing and
    validating them is what this saves."""
    return parse_schedule(load_schedule_yaml(source), source=source)


def parse_schedule(raw: Any, source: str = "<dict>") -> Schedule:
    if not isinstance(raw, Mapping) or not raw:
        raise ScheduleError(
            "a schedule must be a non-empty mapping of phase index -> phase", source=source, value=type(raw).__name__
        )
    indexed: dict[int, Any] = {}
    for key, body in raw.items():
        index = _phase_index(key, source)
        if index in indexed:
            raise ScheduleError("phase index given twice", source=source, phase=index, value=key)
        indexed[index] = body
    expected = list(range(len(indexed)))
    if sorted(indexed) != expected:
        missing = sorted(set(range(max(indexed) + 1)) - set(indexed))
        raise ScheduleError(
            f"phase indices must be contiguous from 0; missing {missing}", source=source, value=sorted(indexed)
        )
    return Schedule(tuple(_parse_phase(i, indexed[i], source) for i in expected), source=source)


def _phase_index(key: Any, source: str) -> int:
    if isinstance(key, bool):
        raise ScheduleError("phase keys must be integers", source=source, value=key)
    if isinstance(key, int):
        index = key
    elif isinstance(key, str) and key.strip().isdigit():
        index = int(key)  # JSON and command-line overrides cannot express integer keys
    else:
        raise ScheduleError("phase keys must be integers", source=source, value=key)
    if index < 0:
        raise ScheduleError("phase keys must be >= 0", source=source, value=key)
    return index


def _parse_phase(index: int, body: Any, source: str) -> Phase:
    if isinstance(body, Sequence) and not isinstance(body, str):
        body = {"params": list(body)}  # the older FTS layout: a phase is just its parameter list
    if not isinstance(body, Mapping):
        raise ScheduleError("a phase must be a mapping with a 'params' list", source=source, phase=index, value=body)
    _reject_unknown_keys(body, PHASE_KEYS, source, index, prefix="")
    if "params" not in body:
        raise ScheduleError("missing required key", source=source, phase=index, key="params", show_value=False)
    params = body["params"]
    if isinstance(params, str):
        params = [params]
    if not isinstance(params, Sequence) or not params or not all(isinstance(p, str) and p for p in params):
        raise ScheduleError(
            "'params' must be a non-empty list of parameter names or patterns",
            source=source,
            phase=index,
            key="params",
            value=params,
        )
    max_epoch = body.get("max_transition_epoch", -1)
    if isinstance(max_epoch, bool) or not isinstance(max_epoch, int) or max_epoch < -1:
        raise ScheduleError(
            "must be an integer >= -1 (-1 means early stopping alone ends the phase)",
            source=source,
            phase=index,
            key="max_transition_epoch",
            value=max_epoch,
        )
    lr = body.get("lr")
    if lr is not None:
        lr = _positive_float(lr, source, index, "lr")
    lr_decay = body.get("lr_decay")
    if lr_decay is not None:
        lr_decay = lr_decay_value(lr_decay, source, index)
    groups = _parse_groups(body["groups"], source, index) if body.get("groups") is not None else ()
    new_lr_scheduler = new_optimizer = None
    if body.get("new_lr_scheduler") is not None:
        new_lr_scheduler = parse_lr_scheduler_spec(body["new_lr_scheduler"], source, index, "new_lr_scheduler")
    if body.get("new_optimizer") is not None:
        new_optimizer = parse_optimizer_spec(body["new_optimizer"], source, index, "new_optimizer")
    if index == 0 and (new_lr_scheduler or new_optimizer):
        key = "new_lr_scheduler" if new_lr_scheduler else "new_optimizer"
        raise ScheduleError(
            "phase 0 uses the optimizer and LR scheduler from configure_optimizers(); reinitialization is only "
            "allowed in phases >= 1",
            source=source,
            phase=index,
            key=key,
            show_value=False,
        )
    return Phase(index, tuple(params), max_epoch, lr, new_lr_scheduler, new_optimizer, lr_decay=lr_decay, groups=groups)


def lr_decay_value(value: Any, source: str, phase: int | None, key: str = "lr_decay") -> float:
    """``value`` as a layer-wise lr decay: a number in (0, 1]. Each block below the head trains at the lr of the
    block above times this, so 1 means one lr for every block and 0 would freeze all but the head."""
    try:
        number = float(value) if not isinstance(value, bool) else None  # `0.9` may arrive as a string from YAML 1.1
    except (TypeError, ValueError):
        number = None
    if number is None or not 0 < number <= 1:
        raise ScheduleError(
            "must be a number in (0, 1]: each block below the head trains at the lr of the block above times it",
            source=source,
            phase=phase,
            key=key,
            value=value,
        )
    return number


def _parse_groups(raw: Any, source: str, phase: int) -> tuple[PhaseGroup, ...]:
    """A phase's ``groups`` as a run saves them (``lr_decay`` resolved for one model): exact parameter names and a
    fixed lr per group. They are checked against the phase's parameters once those are resolved
    (:func:`ftexp.schedule.layerwise.resolve_layerwise`)."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise ScheduleError("must be a non-empty list of groups", source=source, phase=phase, key="groups", value=raw)
    return tuple(_parse_group(entry, f"groups[{position}]", source, phase) for position, entry in enumerate(raw))


def _parse_group(entry: Any, key: str, source: str, phase: int) -> PhaseGroup:
    if not isinstance(entry, Mapping):
        raise ScheduleError("must be a mapping with 'lr' and 'params'", source=source, phase=phase, key=key)
    _reject_unknown_keys(entry, GROUP_KEYS, source, phase, prefix=f"{key}.")
    params = entry.get("params")
    listed = isinstance(params, Sequence) and not isinstance(params, str) and bool(params)
    if not listed or not all(isinstance(name, str) and name for name in params):
        problem = "must be a non-empty list of parameter names"
        raise ScheduleError(problem, source=source, phase=phase, key=f"{key}.params", value=params)
    if entry.get("lr") is None:
        raise ScheduleError("missing required key", source=source, phase=phase, key=f"{key}.lr")
    lr = _positive_float(entry["lr"], source, phase, f"{key}.lr")
    return PhaseGroup(str(entry.get("name") or key), tuple(params), lr=lr)


def parse_lr_scheduler_spec(raw: Any, source: str, phase: int | None, key: str) -> LRSchedulerSpec:
    raw = to_plain_container(raw)
    if not isinstance(raw, Mapping):
        raise ScheduleError("must be a mapping", source=source, phase=phase, key=key, value=raw)
    _reject_unknown_keys(raw, LR_SCHEDULER_KEYS, source, phase, prefix=f"{key}.")
    if "lr_scheduler_init" not in raw:
        raise ScheduleError("missing required key", source=source, phase=phase, key=f"{key}.lr_scheduler_init")
    init = _parse_class_spec(raw["lr_scheduler_init"], source, phase, f"{key}.lr_scheduler_init")
    pl_cfg = raw.get("pl_lrs_cfg") or {}
    if not isinstance(pl_cfg, Mapping):
        raise ScheduleError("must be a mapping", source=source, phase=phase, key=f"{key}.pl_lrs_cfg", value=pl_cfg)
    _reject_unknown_keys(pl_cfg, PL_LRS_CFG_KEYS, source, phase, prefix=f"{key}.pl_lrs_cfg.")
    interval = pl_cfg.get("interval", "epoch")
    if interval not in ("epoch", "step"):
        raise ScheduleError(
            "must be 'epoch' or 'step'", source=source, phase=phase, key=f"{key}.pl_lrs_cfg.interval", value=interval
        )
    frequency = pl_cfg.get("frequency", 1)
    if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
        raise ScheduleError(
            "must be a positive integer", source=source, phase=phase, key=f"{key}.pl_lrs_cfg.frequency", value=frequency
        )
    if not isinstance(pl_cfg.get("reduce_on_plateau", False), bool):
        raise ScheduleError(
            "must be true or false",
            source=source,
            phase=phase,
            key=f"{key}.pl_lrs_cfg.reduce_on_plateau",
            value=pl_cfg["reduce_on_plateau"],
        )
    init_pg_lrs = raw.get("init_pg_lrs")
    if init_pg_lrs is not None:
        if not isinstance(init_pg_lrs, Sequence) or isinstance(init_pg_lrs, str) or not init_pg_lrs:
            raise ScheduleError(
                "must be a non-empty list of learning rates",
                source=source,
                phase=phase,
                key=f"{key}.init_pg_lrs",
                value=init_pg_lrs,
            )
        init_pg_lrs = tuple(
            _positive_float(v, source, phase, f"{key}.init_pg_lrs[{i}]", allow_zero=True)
            for i, v in enumerate(init_pg_lrs)
        )
    use_current = raw.get("use_current_optimizer_pg_lrs", False)
    if not isinstance(use_current, bool):
        raise ScheduleError(
            "must be true or false",
            source=source,
            phase=phase,
            key=f"{key}.use_current_optimizer_pg_lrs",
            value=use_current,
        )
    if use_current and init_pg_lrs is not None:
        raise ScheduleError(
            "give either init_pg_lrs or use_current_optimizer_pg_lrs, not both", source=source, phase=phase, key=key
        )
    return LRSchedulerSpec(init, dict(pl_cfg), init_pg_lrs, use_current)


def parse_optimizer_spec(raw: Any, source: str, phase: int | None, key: str) -> OptimizerSpec:
    raw = to_plain_container(raw)
    if not isinstance(raw, Mapping):
        raise ScheduleError("must be a mapping", source=source, phase=phase, key=key, value=raw)
    _reject_unknown_keys(raw, ("optimizer_init",), source, phase, prefix=f"{key}.")
    if "optimizer_init" not in raw:
        raise ScheduleError("missing required key", source=source, phase=phase, key=f"{key}.optimizer_init")
    return OptimizerSpec(_parse_class_spec(raw["optimizer_init"], source, phase, f"{key}.optimizer_init"))


def _parse_class_spec(raw: Any, source: str, phase: int | None, key: str) -> ClassSpec:
    if not isinstance(raw, Mapping):
        raise ScheduleError("must be a mapping with 'class_path'", source=source, phase=phase, key=key, value=raw)
    _reject_unknown_keys(raw, CLASS_SPEC_KEYS, source, phase, prefix=f"{key}.")
    class_path = raw.get("class_path")
    if not isinstance(class_path, str) or "." not in class_path:
        raise ScheduleError(
            "must be a dotted import path such as torch.optim.lr_scheduler.StepLR",
            source=source,
            phase=phase,
            key=f"{key}.class_path",
            value=class_path,
        )
    init_args = raw.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise ScheduleError("must be a mapping", source=source, phase=phase, key=f"{key}.init_args", value=init_args)
    return ClassSpec(class_path, dict(init_args))


def _reject_unknown_keys(body: Mapping, allowed: Sequence[str], source: str, phase: int | None, prefix: str) -> None:
    for key in body:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            did_you_mean = f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(allowed)}"
            raise ScheduleError(f"unknown key{did_you_mean}", source=source, phase=phase, key=f"{prefix}{key}")


def _positive_float(value: Any, source: str, phase: int | None, key: str, allow_zero: bool = False) -> float:
    # YAML 1.1 reads `1e-5` (no dot) as a string; accept it, since it is what users mean.
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number != number or number < 0 or (number == 0 and not allow_zero):
        raise ScheduleError("must be a positive number", source=source, phase=phase, key=key, value=value)
    return number


def resolve_schedule(schedule: Schedule, param_names: Sequence[str]) -> tuple[Schedule, list[str]]:
    """Expand names and patterns to exact parameter names.

    An entry equal to a parameter name selects exactly that parameter; anything else is a regular expression that
    must match at the start of a name (``re.match``, as FTS does). Under a peft adapter wrapper, an entry selects
    the parameters it matches by their own (wrapped) names or by their plain model's names, so that one written for
    the plain model selects what it meant, and the adapters no phase names join phase 0
    (:mod:`ftexp.schedule.wrapped_names`). Returns the resolved schedule and the names no phase thaws (peft's frozen
    copies, which no phase may thaw, left out).
    """
    known = set(param_names)
    wrapped = WrappedNames.of(param_names)
    frozen_copies = wrapped.frozen_copies if wrapped is not None else frozenset()
    if schedule.resolved:  # already exact names (a run resolves once and hands the schedule on): only check them
        scheduled = schedule.params_through(schedule.max_depth)
        unknown = [name for name in scheduled if name not in known]
        if unknown:
            raise ScheduleError(
                f"was resolved for another model: {len(unknown)} of its parameters are not in this one",
                source=schedule.source,
                key="params",
                value=unknown[:3],
            )
        return schedule, [name for name in param_names if name not in set(scheduled) and name not in frozen_copies]
    owner: dict[str, int] = {}
    phases = []
    for phase in schedule.phases:
        resolved: list[str] = []
        for entry in phase.params:
            for name in _expand_entry(entry, param_names, known, wrapped, schedule.source, phase.index):
                if name in owner and owner[name] != phase.index:
                    raise ScheduleError(
                        f"parameter '{name}' is already scheduled in phase {owner[name]}; each parameter may be "
                        "thawed by one phase only",
                        source=schedule.source,
                        phase=phase.index,
                        key="params",
                        value=entry,
                    )
                if name not in owner:
                    owner[name] = phase.index
                    resolved.append(name)
        phases.append(Phase(**{**phase.__dict__, "params": tuple(resolved)}))
    if wrapped is not None and phases:
        unscheduled = tuple(name for name in wrapped.adapters if name not in owner)
        owner.update(dict.fromkeys(unscheduled, 0))
        phases[0] = replace(phases[0], params=(*phases[0].params, *unscheduled))
    never_thawed = [name for name in param_names if name not in owner and name not in frozen_copies]
    return Schedule(tuple(phases), source=schedule.source, resolved=True), never_thawed


def _expand_entry(
    entry: str, param_names: Sequence[str], known: set[str], wrapped: WrappedNames | None, source: str, phase: int
) -> list[str]:
    if wrapped is not None and entry in wrapped.frozen_copies:
        raise ScheduleError(
            "is peft's frozen copy of a module whose trained copy is modules_to_save.default: no phase may thaw it "
            "(it takes no part in the forward pass)",
            source=source,
            phase=phase,
            key="params",
            value=entry,
        )
    if entry in known:
        return [entry]
    if wrapped is not None and entry in wrapped.plain_to_wrapped:
        return [wrapped.plain_to_wrapped[entry]]
    try:
        pattern = re.compile(entry)
    except re.error as err:
        raise ScheduleError(
            f"not a parameter name, and not a valid regular expression ({err})",
            source=source,
            phase=phase,
            key="params",
            value=entry,
        ) from err
    direct, through = _pattern_matches(pattern, param_names, wrapped)
    matched = [name for name in param_names if name in direct or name in through]  # the model's order
    if not matched:
        raise ScheduleError(
            f"matches no parameter of the model{_no_match_hint(entry, param_names, wrapped)}",
            source=source,
            phase=phase,
            key="params",
            value=entry,
        )
    return matched


def _pattern_matches(
    pattern: re.Pattern[str], param_names: Sequence[str], wrapped: WrappedNames | None
) -> tuple[set[str], set[str]]:
    """The parameters a pattern selects by their own names, and those it selects through their plain names."""
    if wrapped is None:
        return {name for name in param_names if pattern.match(name)}, set()
    direct = {name for name in param_names if not wrapped.unselectable(name) and pattern.match(name)}
    return direct, {w for plain, w in wrapped.plain_to_wrapped.items() if pattern.match(plain)}


def entries_through_wrapper(schedule: Schedule, param_names: Sequence[str]) -> list[tuple[int, str, int]]:
    """The entries of an unresolved schedule that select parameters through their plain names under a peft wrapper
    (which their wrapped names would not select), as (phase, entry, those tensors): what the dry run reports as
    mapped. Empty without a wrapper."""
    wrapped = WrappedNames.of(param_names)
    if wrapped is None or schedule.resolved:
        return []
    known = set(param_names)
    mapped = []
    for phase in schedule.phases:
        for entry in phase.params:
            if entry in known:
                continue
            if entry in wrapped.plain_to_wrapped:
                mapped.append((phase.index, entry, 1))
                continue
            try:
                direct, through = _pattern_matches(re.compile(entry), param_names, wrapped)
            except re.error:
                continue  # resolve_schedule reports it
            if through - direct:
                mapped.append((phase.index, entry, len(through - direct)))
    return mapped


def _no_match_hint(entry: str, param_names: Sequence[str], wrapped: WrappedNames | None) -> str:
    """Closest names, among the plain names too under an adapter wrapper (a schedule for the plain model is what a
    user writes); what a pattern matches only among adapters or frozen copies is said as such."""
    if wrapped is None:
        return no_match_hint(entry, param_names)
    pattern = re.compile(entry)
    hidden = [name for name in param_names if wrapped.unselectable(name) and pattern.match(name)]
    if hidden:
        shown = ", ".join(hidden[:3]) + (f" ... ({len(hidden)} in all)" if len(hidden) > 3 else "")
        if all(name in wrapped.frozen_copies for name in hidden):
            return (
                f" but peft's frozen copies, which no phase may thaw (their trained copy is modules_to_save): {shown}"
            )
        return (
            " but peft's adapters or frozen copies, which no pattern selects (adapters train from phase 0, and one "
            f"named exactly may be scheduled elsewhere; frozen copies never): {shown}"
        )
    return no_match_hint(entry, [*param_names, *wrapped.plain_to_wrapped])
