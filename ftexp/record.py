"""The record of one run, ``<run_dir>/result.json``: one typed definition for its writer (:func:`ftexp.train.run`,
through :class:`ftexp.results.RunRecorder`) and its readers (:mod:`ftexp.sweeps`, ``notebooks/sweep_analysis.ipynb``).

Nothing but the standard library, so that code reading run dirs shares the record's type without importing the
writer's machinery (PyTorch, Lightning, Hydra).

:meth:`RunRecord.from_json` reads any ``result.json`` ftexp has written, older ones included: a field a file lacks
is ``None`` (a reader tells "not recorded" from a value), a key this version does not know is kept in ``extra``.
:meth:`RunRecord.to_json` writes the layout ``run`` has always written, to the byte: the keys in the same order,
the parts of the record that a run may not reach (``test``, ``error``, what the fit left, ``rank_errors``) left out
rather than written as ``null``.

>>> record = RunRecord.read("outputs/demo/explicit/2026-11-23_10-00-00/result.json")  # doctest: +SKIP
>>> record.status is RunStatus.COMPLETED, record.best.epoch, record.best.metrics["val_acc"]  # doctest: +SKIP
(True, 6, 0.616)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any


class RecordError(ValueError):
    """A ``result.json`` whose content is not a run record (a part of the wrong shape)."""


class RunStatus(str, Enum):
    """How a run ended, as ``result.json``'s ``status`` (and each attempt's) says. A ``str``: members compare equal
    to the strings in the file (``RunStatus.COMPLETED == "completed"``) and print as them."""

    COMPLETED = "completed"
    FAILED = "failed"
    # stopped at a checkpoint (Ctrl-C, SIGTERM, a preemption signal nobody requeues): a rerun in the run dir resumes
    INTERRUPTED = "interrupted"
    REQUEUED = "requeued"  # a cluster job stopped at a checkpoint, to continue in a later attempt
    # written by no run: what a reader reports for a job dir without result.json (still running, or killed)
    RUNNING_OR_MISSING = "running/missing"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: Any) -> RunStatus | str | None:
        """The member ``value`` names; a string no member has stays as it is (a status of a newer writer)."""
        if value is None or isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            return str(value)


@dataclass
class EpochRow:
    """One epoch of ``history``: the metrics Lightning had reduced at its end (``train_loss``, ``val_loss``,
    ``val_acc``, ``finetuning_depth``, ``lr-AdamW/pg1`` ...). In the file: ``{"epoch": 3, "val_loss": 0.68, ...}``;
    an empty row (``{}``: ``final`` of a run that ended before its first epoch) has no epoch."""

    epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**({"epoch": self.epoch} if self.epoch is not None else {}), **self.metrics}

    @classmethod
    def from_dict(cls, data: Any) -> EpochRow:
        data = _object(data, "an epoch row")
        return cls(epoch=data.get("epoch"), metrics={k: v for k, v in data.items() if k != "epoch"})


@dataclass
class BestEpoch(EpochRow):
    """The epoch with the best value of the checkpoint's ``monitor`` (``mode`` min or max); no epoch and no metrics
    when the monitor was never logged. In the file: the row with ``monitor`` and ``mode`` first."""

    monitor: str | None = None
    mode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, **super().to_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> BestEpoch:
        data = _object(data, "best")
        row = EpochRow.from_dict({k: v for k, v in data.items() if k not in ("monitor", "mode")})
        return cls(epoch=row.epoch, metrics=row.metrics, monitor=data.get("monitor"), mode=data.get("mode"))


@dataclass
class TestResult:
    """The test stage's metrics (``test_loss``, ``test_acc`` ...) and the checkpoint it tested (``None``: the
    weights the fit ended with)."""

    __test__ = False  # not a pytest test class

    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics, "checkpoint": self.checkpoint}

    @classmethod
    def from_dict(cls, data: Any) -> TestResult:
        data = _object(data, "test")
        return cls(metrics={k: v for k, v in data.items() if k != "checkpoint"}, checkpoint=data.get("checkpoint"))


@dataclass
class PhaseStart:
    """A phase the run trained in (``depth``) and the epoch it began."""

    depth: int | None = None
    start_epoch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain_fields(self)

    @classmethod
    def from_dict(cls, data: Any) -> PhaseStart:
        return _from_plain_fields(cls, data, "a phase of phases_run")


@dataclass
class TransitionRecord:
    """One phase transition, as :class:`ftexp.FinetuningScheduler` records it: the depth it went to and at which
    epoch, the parameters (tensors) and weights it thawed, every parameter group's lr after it, the phase whose best
    state it restored first (``None``: none) and how (``restore``: source, depth, bytes; left out of the file when
    there is none, as in files written before it was recorded) and how long it took."""

    depth: int | None = None
    epoch: int | None = None
    new_params: int | None = None
    new_weights: int | None = None
    lrs: list[float] | None = None
    restored_from_depth: int | None = None
    restore: dict[str, Any] | None = None
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain_fields(self, left_out_when_none=("restore",))

    @classmethod
    def from_dict(cls, data: Any) -> TransitionRecord:
        return _from_plain_fields(cls, data, "a transition")


@dataclass
class ParamGroupRecord:
    """One parameter group of the optimizer, in the optimizer's order (LearningRateMonitor's ``pg1`` is the first):
    the phase that added it, its weight decay (``0.0`` for a phase's ``no_decay`` group), how many tensors it holds
    and the modules they belong to, named as the largest modules its phase thaws completely
    (``["model.bert.encoder.layer.1"]``; a parameter's own name where its phase takes only part of a module)."""

    phase: int | None = None
    weight_decay: float | None = None
    tensors: int | None = None
    modules: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain_fields(self)

    @classmethod
    def from_dict(cls, data: Any) -> ParamGroupRecord:
        return _from_plain_fields(cls, data, "a parameter group")


@dataclass
class AttemptRecord:
    """One attempt at the run (a process that started it, or resumed it from a checkpoint): when it started, from
    which checkpoint, under which SLURM job, how it ended, the epochs it trained (``start_epoch`` up to, not
    including, ``end_epoch``), its wall time and the CPU time it used (``cpu_time_s``: user + system time of the
    process and of the child processes it waited for, such as DataLoader workers; under ddp rank 0's only, see
    :func:`ftexp.results.cpu_seconds`; left out of files written before it was recorded)."""

    started_at: str | None = None  # ISO 8601, UTC
    resumed_from: str | None = None
    slurm_job_id: str | None = None
    status: RunStatus | str | None = None
    start_epoch: int | None = None
    end_epoch: int | None = None
    wall_time_s: float | None = None
    cpu_time_s: float | None = None
    attempt_id: str | None = None  # what ftexp.attempt_log recognizes it by (left out of files written before it)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain_fields(self, left_out_when_none=("cpu_time_s", "attempt_id"))

    @classmethod
    def from_dict(cls, data: Any) -> AttemptRecord:
        attempt = _from_plain_fields(cls, data, "an attempt")
        attempt.status = RunStatus.parse(attempt.status)
        return attempt


@dataclass
class RunRecord:
    """What one run (all its attempts) left: ``result.json``. The fields in the order of the file.

    The parts a run may not reach are ``None`` when it did not, and are then left out of the file: ``test`` (not
    tested), ``error`` (no failure), what the fit left (``epochs_run`` to ``history``: absent when the run failed
    before its trainer was built; ``transitions``, ``reached_depth`` and ``schedule_path`` only for a scheduled run;
    ``param_groups`` when the run had an optimizer), ``rank_errors`` (a multi-process run where other ranks failed
    too) and ``cpu_time_s`` (files written before it was recorded, or a run resumed from such an attempt).
    """

    name: str | None = None
    scenario: str | None = None  # the schedule option: nofts, implicit, explicit ...
    recipe: str | None = None  # what the scenario is made of, in one line (ftexp.run_schedule.recipe_line)
    seed: int | None = None
    sweep: str | None = None
    overrides: list[str] | None = None  # the Hydra job's command-line overrides
    status: RunStatus | str | None = None
    resumed_from: str | None = None  # the checkpoint this attempt resumed from
    run_dir: str | None = None
    result_file: str | None = None
    test: TestResult | None = None
    error: str | None = None  # "<exception type>: <message>"; under DDP "rank <N>: ..." for the first failure
    epochs_run: int | None = None
    best: BestEpoch | None = None
    final: EpochRow | None = None
    phases_run: list[PhaseStart] | None = None
    transitions: list[TransitionRecord] | None = None
    trainable_params_per_phase: dict[str, int] | None = None  # by depth, as a string
    param_groups: list[ParamGroupRecord] | None = None  # the optimizer's groups when the fit ended
    final_depth: int | None = None  # the schedule's last depth
    reached_depth: int | None = None
    schedule_path: str | None = None  # the resolved schedule file
    total_params: int | None = None
    best_checkpoint: str | None = None
    best_score: float | None = None
    last_checkpoint: str | None = None
    tensorboard_dir: str | None = None
    # accelerator, devices (x nodes), num_nodes, cpu_threads, cuda_visible_devices, slurm_job_id
    hardware: dict[str, Any] | None = None
    history: list[EpochRow] | None = None
    rank_errors: dict[str, str] | None = None  # by rank, as a string
    attempts: list[AttemptRecord] | None = None
    wall_time_s: float | None = None  # summed over the attempts
    cpu_time_s: float | None = None  # summed over the attempts; None when one of them did not record it
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    def to_dict(self) -> dict[str, Any]:
        """The content of ``result.json``, keys in the order the writer has always used."""
        data: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None or self._written_as_null(f.name):
                data[f.name] = _plain(value)
        return {**data, **self.extra}

    def _written_as_null(self, name: str) -> bool:
        """Whether a ``None`` field is written (as ``null``) rather than left out: the identity of the run always;
        where the checkpoints and event files are, with what the fit left; the schedule file, with the depth."""
        return (
            name in _ALWAYS_WRITTEN
            or (name in _WRITTEN_WITH_THE_FIT and self.epochs_run is not None)
            or (name == "schedule_path" and self.reached_depth is not None)
        )

    def to_json(self) -> str:
        """The text of ``result.json``."""
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        """The record of a ``result.json``'s content; :class:`RecordError` when a part has the wrong shape."""
        if not isinstance(data, dict):
            raise RecordError(f"not a JSON object but a {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"extra"}
        parts: dict[str, Any] = {name: value for name, value in data.items() if name in known}
        for name, parse in _PARTS.items():
            if parts.get(name) is not None:
                parts[name] = parse(parts[name])
        for name, parse in _LISTS.items():
            if parts.get(name) is not None:
                parts[name] = [parse(item) for item in _list(parts[name], name)]
        parts["status"] = RunStatus.parse(parts.get("status"))
        return cls(**parts, extra={name: value for name, value in data.items() if name not in known})

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """The record of a ``result.json``'s text; :class:`RecordError` (a ``ValueError``, as is the
        ``json.JSONDecodeError`` of a damaged file) when it holds no run record."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """The record in the file ``path``: ``OSError`` when it cannot be read, ``ValueError`` when it holds none."""
        return cls.from_json(Path(path).read_text())


_ALWAYS_WRITTEN = frozenset(
    {"name", "scenario", "seed", "sweep", "overrides", "status", "resumed_from", "run_dir", "result_file"}
    | {"attempts", "wall_time_s"}
)
_WRITTEN_WITH_THE_FIT = frozenset({"best_checkpoint", "best_score", "last_checkpoint", "tensorboard_dir"})
_PARTS = {"test": TestResult.from_dict, "best": BestEpoch.from_dict, "final": EpochRow.from_dict}
_LISTS = {
    "phases_run": PhaseStart.from_dict,
    "transitions": TransitionRecord.from_dict,
    "history": EpochRow.from_dict,
    "attempts": AttemptRecord.from_dict,
    "param_groups": ParamGroupRecord.from_dict,
}


def _plain(value: Any) -> Any:
    """A field's value as JSON has it: records as their dicts, statuses as their strings."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def _plain_fields(record: Any, left_out_when_none: tuple[str, ...] = ()) -> dict[str, Any]:
    """A flat record's dict: every field (``null`` too, as the writer writes them), then its unknown keys."""
    data = {
        f.name: _plain(getattr(record, f.name))
        for f in fields(record)
        if f.name != "extra" and not (f.name in left_out_when_none and getattr(record, f.name) is None)
    }
    return {**data, **record.extra}


def _from_plain_fields(cls: Any, data: Any, what: str) -> Any:
    data = _object(data, what)
    known = {f.name for f in fields(cls)} - {"extra"}
    values = {name: value for name, value in data.items() if name in known}
    return cls(**values, extra={name: value for name, value in data.items() if name not in known})


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RecordError(f"{what}: not a JSON object but a {type(data).__name__}")
    return data


def _list(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise RecordError(f"{what}: not a JSON array but a {type(data).__name__}")
    return data
