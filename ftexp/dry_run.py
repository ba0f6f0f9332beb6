"""The phase plan of a run: which parameters each phase thaws, at which lr, under which LR scheduler, and what ends
the phase, worked out from the config and the model without a Trainer.

``python -m ftexp dry_run=true`` prints it as a table, with every problem found, and trains nothing: the model is
built on the ``meta`` device (no weights are allocated or loaded), no checkpoint, log or result file is written.
It reads the schedule a real run would get (:func:`ftexp.run_schedule.resolve_run_schedule`) and applies the same
rules the callback applies (:mod:`ftexp.schedule.run_rules`, :meth:`~ftexp.schedule.Schedule.run_max_epochs`), so
the plan shows exactly what the run would do.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import nn

from ftexp.callbacks.freezing import set_trainable
from ftexp.callbacks.phase_layout import configured_phase0_lr, enforce_phase0
from ftexp.config import ConfigError, instantiate, scheduler_node, validate_config
from ftexp.config.rules import REINIT_KEY, SCHEDULE_KEY
from ftexp.run_schedule import (
    RunSchedule,
    model_inputs,
    model_node,
    reinit_spec,
    replaced_schedulers_note,
    resolve_run_schedule,
)
from ftexp.schedule import (
    LRSchedulerSpec,
    Phase,
    Schedule,
    ScheduleError,
    check_phase_directives,
    defaults,
)
from ftexp.schedule.implicit import declared_newly_initialized
from ftexp.schedule.names import largest_modules
from ftexp.schedule.run_rules import epoch_transition_problems, late_transition_warnings
from ftexp.schedule.wrapped_names import WrappedNames, is_adapter

log = logging.getLogger(__name__)


def build_skeleton(cfg: DictConfig, datamodule: pl.LightningDataModule) -> pl.LightningModule:
    """The run's model on the ``meta`` device: every parameter's name, shape and module, no memory, no download
    of weights. A pretrained model is built from its config (``AutoConfig.from_pretrained``) instead, and given the
    ``newly_initialized`` parameters ``from_pretrained`` would report, read from the checkpoint's tensor names
    (:func:`expected_newly_initialized`), so that the plan's implicit schedule is the run's."""
    inputs = model_inputs(datamodule)
    node = model_node(cfg)
    if node.get("pretrained"):
        inputs.update(_pretrained_as_config(str(node.pretrained)))
        inputs["vocab_size"] = None  # the checkpoint's own vocabulary, as from_pretrained would give
    with torch.device("meta"):
        skeleton = instantiate(node, **inputs)
    if node.get("pretrained") and isinstance(getattr(skeleton, "model", None), nn.Module):
        from ftexp.hub import resolve_pretrained

        new, unread = expected_newly_initialized(resolve_pretrained(str(node.pretrained)), skeleton.model)
        skeleton.newly_initialized = tuple(f"model.{name}" for name in new)
        skeleton.newly_initialized_unknown = unread
    return skeleton


# the weights files from_pretrained looks for, in its order of preference
CHECKPOINT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)


def expected_newly_initialized(source: str, backbone: nn.Module) -> tuple[tuple[str, ...], str | None]:
    """The parameters of ``backbone`` (a meta-device copy of what ``from_pretrained(source)`` builds) that the
    checkpoint at ``source`` does not hold, in ``named_parameters()`` order, and ``None``; or ``()`` and why they
    cannot be known without reading weights.

    The run takes them from ``from_pretrained``'s own loading report; the plan cannot load weights, so it matches
    the checkpoint's tensor names (file headers, an index, or the hub's safetensors metadata; nothing is
    downloaded but headers) the way ``from_pretrained`` does for ordinary checkpoints: a name as it is, or without
    the base model's prefix (a checkpoint of the bare backbone), legacy ``gamma``/``beta`` read as
    ``weight``/``bias``.
    """
    tensors, unread = _checkpoint_tensor_names(source)
    if tensors is None:
        return (), unread
    held = {_modern_name(name) for name in tensors}
    prefix = getattr(backbone, "base_model_prefix", "")
    base = f"{prefix}." if prefix else None

    def in_checkpoint(name: str) -> bool:
        return name in held or (base is not None and name.startswith(base) and name[len(base) :] in held)

    return tuple(name for name, _ in backbone.named_parameters() if not in_checkpoint(name)), None


def _modern_name(name: str) -> str:
    for old, new in ((".gamma", ".weight"), (".beta", ".bias")):
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


def _checkpoint_tensor_names(source: str) -> tuple[set[str] | None, str | None]:
    """The tensor names of the checkpoint ``from_pretrained(source)`` loads (a directory, or a hub id whose files
    are cached or whose safetensors headers the hub serves), and ``None``; or ``None`` and why not."""
    for filename in CHECKPOINT_FILES:
        path = _checkpoint_file(source, filename)
        if path is not None:
            try:
                return _tensor_names_in(path), None
            except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as err:
                return None, f"cannot read the tensor names of {path} ({type(err).__name__}: {err})"
    if Path(source).exists():
        return None, f"{source} holds none of {', '.join(CHECKPOINT_FILES)}"
    from ftexp.hub import offline_mode

    if offline_mode():
        return None, f"no weights file of {source!r} in the hub cache (offline mode)"
    try:
        from huggingface_hub import get_safetensors_metadata

        return set(get_safetensors_metadata(source).weight_map), None
    except Exception as err:  # unreachable hub, no safetensors in the repo, a private repo: the run will know
        return None, f"the hub gives no safetensors metadata of {source!r} ({type(err).__name__}: {err})"


def _checkpoint_file(source: str, filename: str) -> Path | None:
    directory = Path(source)
    if directory.is_dir():
        path = directory / filename
        return path if path.is_file() else None
    if directory.exists():
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(source, filename)
    except ValueError:  # not a valid hub id either: from_pretrained will say so
        return None
    return Path(cached) if isinstance(cached, str) else None


def _tensor_names_in(path: Path) -> set[str]:
    """Tensor names from a weights file without reading its weights: an index's ``weight_map``, a safetensors
    header, or a torch zip file memory-mapped onto the meta device."""
    if path.name.endswith(".index.json"):
        return set(json.loads(path.read_text())["weight_map"])
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return set(handle.keys())
    return set(torch.load(path, map_location="meta", mmap=True, weights_only=True))


def _pretrained_as_config(pretrained: str) -> dict[str, Any]:
    from transformers import AutoConfig

    from ftexp.hub import require_hub, resolve_pretrained

    source = resolve_pretrained(pretrained)
    require_hub(source, f"the config of model {pretrained!r}", "Point model.pretrained at a local directory.")
    config = AutoConfig.from_pretrained(source).to_diff_dict()
    per_run = ("model_type", "architectures", "transformers_version", "id2label", "label2id", "num_labels")
    backbone = {"model_type": config["model_type"], **{k: v for k, v in config.items() if k not in per_run}}
    return {"pretrained": None, "backbone": {k: v for k, v in backbone.items() if not k.startswith("_")}}


# ---------------------------------------------------------------------------------------------- the plan
@dataclass
class GroupRow:
    """One block of a phase with per-group lrs (``lr_decay``): the modules it holds and its lr."""

    name: str
    tensors: int
    weights: int
    lr: str


@dataclass
class PhaseRow:
    index: int
    params: tuple[str, ...]
    tensors: int
    weights: int
    lr: str
    scheduler: str
    ends: str
    groups: list[GroupRow] = field(default_factory=list)  # one per block of an lr_decay phase, output side first


@dataclass
class Plan:
    model: str
    total_tensors: int
    total_weights: int
    header: list[str]
    rows: list[PhaseRow]
    parameters: list[str]  # one compact description per row
    notes: list[str]
    problems: list[str]


def plan_phases(cfg: DictConfig, model: pl.LightningModule) -> Plan:
    """Work out the phase plan of ``cfg`` for ``model`` (typically a meta-device skeleton) and every problem that
    would stop the run at start-up. The model's ``requires_grad`` flags are changed."""
    numel = {name: p.numel() for name, p in model.named_parameters()}
    all_names = list(numel)
    header = [f"schedule={cfg.schedule.name}", _lr_reinit_effect(cfg.lr_reinit.name, None, [])]
    notes: list[str] = []
    problems: list[str] = []
    plan = Plan(type(model).__name__, len(numel), sum(numel.values()), header, [], [], notes, problems)
    try:
        run_schedule = resolve_run_schedule(cfg, model)
    except ConfigError as err:
        problems.extend(err.problems)
        return plan
    fts = scheduler_node(cfg)
    trainer = cfg.trainer
    max_epochs = trainer.get("max_epochs")
    stopper = cfg.schedule.callbacks.get("early_stopping")
    if run_schedule is None:  # nofts: one phase, everything
        phase0 = _phase0_optimizer(model, all_names, notes)
        lr, scheduler = (phase0.lrs, phase0.scheduler) if phase0 is not None else ("?", "?")
        ends = f"max_epochs={max_epochs}" + (f" or {_stopping(stopper)}" if stopper else "")
        plan.rows.append(PhaseRow(0, tuple(all_names), len(numel), sum(numel.values()), lr, scheduler, ends))
        plan.parameters.append("everything")
        return plan

    schedule = run_schedule.schedule
    header.append(f"{run_schedule.kind} schedule {run_schedule.source}")
    new_scheduler_phases: list[int] = []
    if run_schedule.replaced_lr_schedulers:
        notes.append(replaced_schedulers_note(cfg.lr_reinit.name, run_schedule))
    if run_schedule.never_thawed:
        shown = ", ".join(_compact(run_schedule.never_thawed, all_names))
        notes.append(f"never thawed ({len(run_schedule.never_thawed)} tensors): {shown}")
    notes.extend(_adapter_notes(model, run_schedule, all_names))
    notes.extend(_newly_initialized_notes(model, run_schedule, all_names))
    final = schedule.final_depth(fts.get("max_depth", -1))
    epoch_only = bool(fts.get("epoch_transitions_only", False))
    restore_best = fts.get("restore_best", True)
    header.append(f"restore_best={restore_best}" + (", transitions at epochs only" if epoch_only else ""))
    reinit = reinit_spec(cfg, problems)  # every phase after the first starts it, whatever the schedule's kind
    run_max_epochs = schedule.run_max_epochs(max_epochs)
    if run_max_epochs != max_epochs:
        notes.append(
            f"the final phase has a max_transition_epoch: trainer.max_epochs={max_epochs} is raised to "
            f"{run_max_epochs} (as FTS does)"
        )
        max_epochs = run_max_epochs

    try:
        phase0 = _phase0_optimizer(
            model, schedule.params_through(0), notes, schedule, bool(fts.get("enforce_phase0_params", True))
        )
    except ScheduleError as err:  # enforce_phase0_params=false and an optimizer the run would refuse
        problems.append(f"schedule.callbacks.fts.enforce_phase0_params: {err}")
        phase0 = None
    phase0_lr, phase0_scheduler = (phase0.lrs, phase0.scheduler) if phase0 is not None else ("?", "?")
    groups = phase0.n_groups if phase0 is not None else None
    base_max_lr = fts.get("base_max_lr", defaults.BASE_MAX_LR)
    first_lr = phase0.first_lr if phase0 is not None else None
    if groups is not None:
        try:
            check_phase_directives(
                schedule.truncated(final),
                groups,
                getattr(model, "no_decay", None),
                reinit_lr=reinit,
                allow_untested=bool(fts.get("allow_untested", False)),
            )
        except ScheduleError as err:
            problems.append(f"{REINIT_KEY if err.source == 'reinit_lr_cfg' else SCHEDULE_KEY}: {err}")

    problems.extend(f"{SCHEDULE_KEY}: {err}" for err in epoch_transition_problems(schedule, final, epoch_only))
    notes.extend(late_transition_warnings(schedule, final, max_epochs))
    for phase in schedule.phases:
        if phase.index == 0:
            lr, scheduler = phase0_lr, phase0_scheduler
            own_lr = phase0.phase_lr if phase0 is not None else phase.lr
        else:
            known = phase.lr is not None or base_max_lr is not None or first_lr is not None
            own_lr = defaults.added_group_lr(phase.lr, base_max_lr, first_lr) if known else None
            lr = _fmt_lr(own_lr) if own_lr is not None else "?"
            spec = reinit or phase.new_lr_scheduler
            scheduler = f"new {_describe_spec(spec)}" if spec else "continues"
            if spec and phase.index <= final:
                new_scheduler_phases.append(phase.index)
        ends = _phase_end(phase.index, phase.max_transition_epoch, final, epoch_only, stopper, max_epochs)
        tensors = len(phase.params)
        weights = sum(numel[n] for n in phase.params)
        row = PhaseRow(phase.index, phase.params, tensors, weights, lr, scheduler, ends)
        if phase.groups:
            row.lr, row.groups = _decayed_lr(phase, own_lr), _group_rows(phase, own_lr, numel, all_names)
        plan.rows.append(row)
        plan.parameters.append(", ".join(_compact(phase.params, all_names)))
    header[1] = _lr_reinit_effect(cfg.lr_reinit.name, run_schedule.kind, new_scheduler_phases, final)
    return plan


def _decayed_lr(phase: Phase, phase_lr: float | None) -> str:
    """The lr cell of a phase with per-group lrs: the lr its groups scale from and the decay, or (groups read from a
    saved schedule, lrs fixed) that each group has its own."""
    if phase.lr_decay is None:
        return "per group"
    return f"{_fmt_lr(phase_lr) if phase_lr is not None else '?'} x {phase.lr_decay:g}^k"


def _group_rows(phase: Phase, phase_lr: float | None, numel: Mapping[str, int], all_names: list[str]) -> list[GroupRow]:
    """One row per group of an ``lr_decay`` phase, at the lr the run gives it
    (:meth:`~ftexp.schedule.PhaseGroup.lr_for`)."""
    rows = []
    for group in phase.groups:
        if group.lr is None and phase_lr is None:
            lr = "?"  # the phase's lr comes from an optimizer the plan could not build
        else:
            lr = _fmt_lr(group.lr if group.lr is not None else group.lr_for(phase_lr))
        name = ", ".join(_compact(group.params, all_names))
        rows.append(GroupRow(name, len(group.params), sum(numel[n] for n in group.params), lr))
    return rows


def _newly_initialized_notes(model: pl.LightningModule, run_schedule: RunSchedule, all_names: list[str]) -> list[str]:
    """Which parameters ``from_pretrained`` initializes at random and where the schedule trains them: an implicit
    schedule puts them in phase 0 (that is why they are there, whatever their position); an explicit or preset one
    is followed as written, so the note says which of them wait for a later phase or are never thawed."""
    unknown = getattr(model, "newly_initialized_unknown", None)
    if unknown:
        then = "; the run trains those from_pretrained reports from phase 0" if run_schedule.kind == "implicit" else ""
        return [f"the parameters from_pretrained will initialize at random are not known to the plan: {unknown}{then}"]
    new = [name for name in declared_newly_initialized(model) if not is_adapter(name)]  # adapters: their own note
    if not new:
        return []
    shown = ", ".join(_compact(new, all_names))
    if run_schedule.kind == "implicit":
        return [f"newly initialized by from_pretrained, trained from phase 0: {shown}"]
    phase_of = {name: phase.index for phase in run_schedule.schedule.phases for name in phase.params}
    late: dict[int | None, list[str]] = {}
    for name in new:
        if phase_of.get(name) != 0:
            late.setdefault(phase_of.get(name), []).append(name)
    if not late:
        return [f"newly initialized by from_pretrained: {shown} (in phase 0 of the {run_schedule.kind} schedule)"]
    where = "; ".join(
        f"{', '.join(_compact(names, all_names))} " + ("never thawed" if phase is None else f"from phase {phase}")
        for phase, names in late.items()
    )
    return [
        f"newly initialized by from_pretrained, yet not trained from phase 0 (the {run_schedule.kind} schedule is "
        f"followed as written): {where}"
    ]


def _adapter_notes(model: pl.LightningModule, run_schedule: RunSchedule, all_names: list[str]) -> list[str]:
    """Under a peft wrapper: what the wrapper did to the names, where the adapters train, and which of the
    schedule's entries (written for the plain model) selected parameters through their plain names."""
    wrapped = WrappedNames.of(all_names)
    if wrapped is None:
        return []
    phase_of = {name: phase.index for phase in run_schedule.schedule.phases for name in phase.params}
    numel = {name: p.numel() for name, p in model.named_parameters()}
    adapter_phases = sorted({phase_of.get(name, -1) for name in wrapped.adapters})
    where = ", ".join("never thawed" if phase < 0 else f"phase {phase}" for phase in adapter_phases)
    notes = [
        f"adapters (peft): {len(wrapped.adapters)} tensors, {sum(numel[n] for n in wrapped.adapters):,} weights, "
        f"trained from {where}; parameter names are the wrapper's: the plain name under base_model.model., a wrapped "
        "layer's own weights under base_layer, the trained head under modules_to_save.default; peft's frozen copy "
        f"of the head (original_module, {len(wrapped.frozen_copies)} tensors) is in no phase"
    ]
    if run_schedule.through_wrapper:
        shown = "; ".join(
            f"phase {phase}: {entry} -> {count} tensor{'s' if count > 1 else ''}"
            for phase, entry, count in run_schedule.through_wrapper
        )
        notes.append(
            f"{len(run_schedule.through_wrapper)} entries of the {run_schedule.kind} schedule resolved through the "
            f"plain model's names: {shown}"
        )
    return notes


def _lr_reinit_effect(choice: str, kind: str | None, new_scheduler_phases: Sequence[int], final: int = 0) -> str:
    """What the lr_reinit choice does to this run, said as its effect: the default choice, explicit, means "as the
    schedule says", which for a generated schedule (no new_lr_scheduler anywhere) is no reinitialization at all.
    ``kind`` is None for an unscheduled run (one phase); ``final`` is the last phase the run reaches."""
    if kind is None:
        return f"one phase: no LR scheduler reinitialization (lr_reinit={choice} has nothing to do)"
    if not new_scheduler_phases:
        why = f": no new_lr_scheduler in the {kind} schedule's phases 0..{final}" if choice == "explicit" else ""
        return f"no LR scheduler reinitialization (lr_reinit={choice}{why})"
    phases = ", ".join(map(str, new_scheduler_phases))
    why = ": as the schedule says" if choice == "explicit" else ""
    return f"new LR scheduler in phase{'s' if len(new_scheduler_phases) > 1 else ''} {phases} (lr_reinit={choice}{why})"


@dataclass
class Phase0Optimizer:
    lrs: str  # the distinct lrs of its groups, for the phase-0 row
    scheduler: str
    n_groups: int  # after the scheduler's enforce_phase0, as the run counts them
    first_lr: float  # the lr later phases without their own lr start from when base_max_lr is None
    phase_lr: float  # the lr phase 0's lr_decay groups scale from (its own lr, else the optimizer's)


def _phase0_optimizer(
    model: pl.LightningModule,
    trainable: Sequence[str],
    notes: list[str],
    schedule: Schedule | None = None,
    enforce: bool = True,
) -> Phase0Optimizer | None:
    """``configure_optimizers()`` called with only ``trainable`` thawed, as the scheduler does at fit start
    (building an optimizer over meta tensors allocates nothing), then made to hold exactly the phase-0 parameters
    as the scheduler's :func:`~ftexp.callbacks.phase_layout.enforce_phase0` does, so the group counts the plan
    checks ``init_pg_lrs`` against are the run's. ``None`` (and a note) when it cannot run without a Trainer; the
    optimizer-dependent checks then wait for the real run."""
    set_trainable(model, trainable)
    try:
        configured = model.configure_optimizers()
    except Exception as err:  # e.g. it needs the Trainer (estimated_stepping_batches): the plan shows "?"
        notes.append(f"lrs unknown: configure_optimizers() needs a Trainer ({type(err).__name__}: {err})")
        return None
    optimizer, scheduler = _unpack_optimizers(configured)
    if optimizer is None:
        return None
    phase_lr = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
    if schedule is not None:
        phase_lr = configured_phase0_lr(schedule, optimizer)  # before enforce_phase0 may rebuild the groups
        enforce_phase0(schedule, optimizer, [], model, allowed_to_fix=enforce, apply_lambdas_new_pgs=False)
    groups = [g for g in optimizer.param_groups if g["params"]]
    lrs = sorted({g["lr"] for g in groups}, reverse=True)
    described = f"{type(scheduler).__name__} from configure_optimizers" if scheduler is not None else "constant lr"
    return Phase0Optimizer(
        ", ".join(_fmt_lr(v) for v in lrs) if lrs else "?",
        described,
        len(groups),
        optimizer.param_groups[0]["lr"],
        phase_lr,
    )


def _unpack_optimizers(configured: Any) -> tuple[torch.optim.Optimizer | None, Any]:
    """The first optimizer and LR scheduler of the usual ``configure_optimizers()`` return values."""
    if isinstance(configured, torch.optim.Optimizer):
        return configured, None
    if isinstance(configured, Mapping):
        scheduler = configured.get("lr_scheduler")
        if isinstance(scheduler, Mapping):
            scheduler = scheduler.get("scheduler")
        return configured.get("optimizer"), scheduler
    if isinstance(configured, Sequence) and configured:
        first = configured[0]
        if isinstance(first, Sequence) and first:  # ([optimizers], [schedulers])
            schedulers = configured[1] if len(configured) > 1 else []
            scheduler = schedulers[0] if schedulers else None
            scheduler = scheduler.get("scheduler") if isinstance(scheduler, Mapping) else scheduler
            return first[0], scheduler
        return _unpack_optimizers(first)
    return None, None


def _phase_end(index: int, epoch: int, final: int, epoch_only: bool, stopper: Any, max_epochs: int | None) -> str:
    if index > final:
        return f"not reached (max_depth={final})"
    stopping = "" if epoch_only else _stopping(stopper)
    if index == final:
        limit = f"max_epochs={max_epochs}" if max_epochs is not None else "max_epochs (Lightning's default)"
        return f"last phase: {limit}" + (f" or {stopping}" if stopping else "")
    if epoch_only:
        return f"at epoch {epoch}"
    return (f"by epoch {epoch} or " if epoch >= 0 else "") + stopping


def _stopping(stopper: Any) -> str:
    if stopper is None:
        return f"early stopping ({defaults.MONITOR}, patience {defaults.PATIENCE}; added by the scheduler)"
    monitor, patience = stopper.get("monitor", defaults.MONITOR), stopper.get("patience", defaults.PATIENCE)
    return f"early stopping ({monitor}, patience {patience})"


def _describe_spec(spec: LRSchedulerSpec) -> str:
    init = spec.lr_scheduler_init
    args = ", ".join(f"{k}={v}" for k, v in init.init_args.items())
    described = f"{init.class_path.rpartition('.')[2]}({args})"
    if spec.init_pg_lrs is not None:  # the groups it lists restart there; any others start at the phase lr
        described += f" from init_pg_lrs [{', '.join(_fmt_lr(lr) for lr in spec.init_pg_lrs)}]"
    return described


def _fmt_lr(lr: float) -> str:
    return f"{lr:.3g}"


def _compact(names: Sequence[str], all_names: Sequence[str]) -> list[str]:
    """Describe ``names`` by the largest modules they cover completely (``model.classifier.*``), in order."""
    labels = [name if module == name else f"{module}.*" for name, module in largest_modules(names, all_names).items()]
    return list(dict.fromkeys(labels))


def format_plan(plan: Plan) -> str:
    header = (
        f"phase plan of {plan.model} ({plan.total_tensors} tensors, {plan.total_weights:,} weights; "
        + "; ".join(plan.header)
        + ")"
    )
    table = [("phase", "tensors", "weights", "lr", "lr scheduler", "phase ends", "parameters")]
    for row, params in zip(plan.rows, plan.parameters, strict=True):
        table.append((str(row.index), str(row.tensors), f"{row.weights:,}", row.lr, row.scheduler, row.ends, params))
        # the groups of an lr_decay phase, one line each under it: k as in its lr cell, "lr x decay^k"
        table.extend(
            (f"  k={k}", str(group.tensors), f"{group.weights:,}", group.lr, "", "", group.name)
            for k, group in enumerate(row.groups)
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    right = {1, 2}
    lines = [header]
    for line in table if plan.rows else []:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*cells, line[-1]]).rstrip())
    lines.extend(f"note: {note}" for note in plan.notes)
    if plan.problems:
        lines.append(f"{len(plan.problems)} problem(s):")
        lines.extend(f"  {problem}" for problem in plan.problems)
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def dry_run(cfg: DictConfig) -> dict[str, Any]:
    """Print the phase plan of ``cfg`` and raise :class:`ConfigError` if anything would stop the run; trains
    nothing and writes nothing."""
    validate_config(cfg)
    datamodule = instantiate(cfg.data)
    model = build_skeleton(cfg, datamodule)
    plan = plan_phases(cfg, model)
    print(format_plan(plan), flush=True)
    if plan.problems:
        raise ConfigError(plan.problems)
    return {"status": "dry_run", "plan": plan, "best": {}}
