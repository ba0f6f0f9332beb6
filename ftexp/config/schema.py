"""What the composed config of a run may contain, as dataclasses: the top level, ``paths``, ``schedule``,
``lr_reinit``, ``hardware`` and ``sweep``. The groups that build an object (``trainer``, ``model``, ``data``,
``logger``, each callback) are :class:`Instantiable`: their schema is the signature of their ``_target_``, so the
schema of ``trainer`` is ``pytorch_lightning.Trainer`` itself and can never go stale.

Declarations only, in one place, so that a new key is added here and nowhere else; :mod:`ftexp.config.typecheck`
checks a config against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


class Instantiable:
    """Schema marker: a node with a ``_target_``, checked against the signature of the target."""


@dataclass
class PathsSchema:
    output_dir: str
    checkpoint_dir: str


@dataclass
class ScheduleSchema:
    name: str
    callbacks: dict[str, Instantiable | None] = field(default_factory=dict)
    # a recipe's own LR scheduler (schedule=ulmfit: slanted triangular lrs), in place of the model's
    lr_scheduler: Instantiable | None = None
    lr_scheduler_config: dict[str, Any] | None = None
    # the adapters a scenario trains (schedule=lora: lora): what model.peft takes unless the command line sets it
    adapters: Any = None


@dataclass
class LRReinitSchema:
    name: Literal["none", "explicit", "implicit"]
    reinit_lr_cfg: dict[str, Any] | None = None


@dataclass
class HardwareSchema:
    name: str
    devices: int | None = None
    nodes: int | None = None
    gpus_per_node: int | None = None
    partition: str | None = None
    timeout_min: int | None = None
    cpus_per_task: int | None = None
    mem_gb: int | None = None
    array_parallelism: int | None = None
    gpus: list[int] | None = None  # hardware=local_gpus: GPU ids to hand out to jobs (null: all)
    gpus_per_job: int | None = None


@dataclass
class SweepSchema:
    name: str


@dataclass
class RunSchema:
    """The composed config of one run (``hydra`` aside)."""

    name: str
    seed: int
    test: bool
    ckpt_path: str | None
    optimized_metric: str
    cpu_threads: int | None
    dry_run: bool
    early_stopping_min_delta: float
    paths: PathsSchema
    model: Instantiable
    data: Instantiable
    schedule: ScheduleSchema
    lr_reinit: LRReinitSchema
    trainer: Instantiable
    callbacks: dict[str, Instantiable | None]
    logger: Instantiable | None = None
    hardware: HardwareSchema | None = None
    explicit_schedule: str | None = None  # set by each model option: its shipped schedule
    sweep: SweepSchema | None = None  # set by the sweep files of multirun_sweeps/
