"""What a composed run config may contain, checked before anything is built, with messages that name the key.

The top level, ``paths``, ``schedule``, ``lr_reinit`` and ``hardware`` are described by the dataclasses below. Every
node with a ``_target_`` (``trainer``, ``model``, ``data``, ``logger``, each callback, optimizer factories,
presets) is checked against the signature of what it instantiates, so the schema of ``trainer`` is
``pytorch_lightning.Trainer`` itself and can never go stale. Checked: unknown keys (with a "did you mean"), values
of the wrong type (where the annotation says unambiguously), interpolations that do not resolve, and the rules that
span groups (LR reinitialization vs. schedule kind, launcher tasks vs. trainer devices, schedule files that do not
exist or do not parse).

It runs twice: as a Hydra callback when a run or multirun starts, before Hydra creates any directory (a failed
start touches nothing, not even an earlier run's dir that ``hydra.run.dir`` points at), and at the top of
:func:`ftexp.train.run`, so that every multirun job and compose-API caller gets the same checks. A schedule that does
not fit the model needs the model: :func:`ftexp.dry_run.resolve_run_schedule` checks it once the model is built.

A key that Hydra itself cannot override (``trainer.max_epoch=3``) fails while Hydra composes the config;
``python -m ftexp`` then adds the "did you mean" line (:func:`unknown_override_hints`).
"""

from __future__ import annotations

import collections.abc
import copy
import difflib
import inspect
import os
import sys
import types
import typing
import warnings
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback as HydraCallback
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

import ftexp.config  # noqa: F401  (registers the ${ftexp_file:...} resolver the configs use)

HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
LOCAL_GPUS_LAUNCHER = "hydra_plugins.ftexp_launchers.local_gpus.LocalGPUsLauncher"


class ConfigError(CompactHydraException, ValueError):
    """A run config that cannot work, found before anything was built. ``problems`` holds one ``key: problem``
    line each; Hydra prints the message alone, without a traceback."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid config: {self.problems[0]}"
        else:
            message = f"invalid config ({len(self.problems)} problems):\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(message)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[str]]]:
        # rebuilt from its problems when a launcher sends it from a job's process back to the sweep's
        return type(self), (self.problems,)


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


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every problem of ``cfg`` (a composed run config, with or without its
    ``hydra`` node)."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(problems)


def config_problems(cfg: DictConfig) -> list[str]:
    problems: list[str] = []
    _check(cfg, RunSchema, "", problems, skip=("hydra",))
    if not problems:  # the cross-group rules assume well-formed nodes
        _check_lr_reinit(cfg, problems)
        _check_schedule_file(cfg, problems)
        _check_launcher(cfg, problems)
    return problems


# ---------------------------------------------------------------------------------------------- structural checks
_UNKNOWN = None  # "cannot tell" in the three-valued type checks below


def _check(value: Any, schema: Any, key: str, problems: list[str], skip: tuple[str, ...] = ()) -> None:
    if schema is Instantiable:
        _check_instantiable(value, key, problems)
    elif is_dataclass(schema):
        _check_dataclass(value, schema, key, problems, skip)
    elif typing.get_origin(schema) in (typing.Union, types.UnionType) and value is None:
        if type(None) not in typing.get_args(schema):
            problems.append(f"{key}: must not be null")
    elif typing.get_origin(schema) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(schema) if a is not type(None)]
        if len(inner) == 1 and (inner[0] is Instantiable or is_dataclass(inner[0])):
            _check(value, inner[0], key, problems)
        else:
            _check_type(value, schema, key, problems)
    elif typing.get_origin(schema) is dict and OmegaConf.is_dict(value):
        item_schema = typing.get_args(schema)[1]
        for name in value:
            resolved = _resolved(value, name, f"{key}.{name}", problems)
            if resolved is not _UNRESOLVABLE:
                _check(resolved, item_schema, f"{key}.{name}", problems)
    else:
        _check_type(value, schema, key, problems)


def _check_dataclass(value: Any, schema: type, key: str, problems: list[str], skip: tuple[str, ...]) -> None:
    if not OmegaConf.is_dict(value):
        problems.append(f"{key or 'config'}: must be a mapping ({schema.__name__}){_got(value)}")
        return
    known = {f.name: f for f in fields(schema)}
    hints = typing.get_type_hints(schema)
    for name in value:
        name = str(name)
        if name in skip:
            continue
        full = _join(key, name)
        if name not in known:
            problems.append(f"unknown key {full}{_did_you_mean(name, known)}")
            continue
        resolved = _resolved(value, name, full, problems)
        if resolved is not _UNRESOLVABLE:
            _check(resolved, hints[name], full, problems)
    for name, spec in known.items():
        required = spec.default is MISSING and spec.default_factory is MISSING
        if required and name not in value:
            problems.append(f"{_join(key, name)}: missing key")


def _check_instantiable(value: Any, key: str, problems: list[str]) -> None:
    if not OmegaConf.is_dict(value) or "_target_" not in value:
        problems.append(f"{key}: must be a mapping with a _target_{_got(value)}")
        return
    target_name = value["_target_"]
    try:
        target = get_object(str(target_name))
    except Exception as err:  # any import failure means the same to the user: the path is wrong
        problems.append(f"{key}._target_: cannot import {target_name!r} ({type(err).__name__}: {err})")
        return
    accepted, hints = _parameters(target)
    for name in value:
        name = str(name)
        if name in HYDRA_KEYS:
            continue
        full = f"{key}.{name}"
        if accepted is not None and name not in accepted:
            problems.append(f"unknown key {full}{_did_you_mean(name, accepted)} ({target_name} takes no '{name}')")
            continue
        resolved = _resolved(value, name, full, problems)
        if resolved is _UNRESOLVABLE:
            continue
        if OmegaConf.is_dict(resolved) and "_target_" in resolved:
            _check_instantiable(resolved, full, problems)
        elif name in hints:
            _check_type(resolved, hints[name], full, problems)


def _parameters(target: Any) -> tuple[set[str] | None, dict[str, Any]]:
    """Keyword arguments ``target`` accepts (``None``: any, it takes ``**kwargs``) and their type hints.

    ftexp's own subclasses that take ``**kwargs`` (``PhaseCheckpoint``, ``PhaseEarlyStopping``) forward them to their
    Lightning base, so the base's parameters are accepted too; other ``**kwargs`` may go anywhere (TensorBoardLogger
    passes them to SummaryWriter), so they accept any key.
    """
    accepted: set[str] = set()
    hints: dict[str, Any] = {}
    owners = [c for c in target.__mro__ if "__init__" in vars(c)] if isinstance(target, type) else [target]
    for owner in owners:
        function = owner.__init__ if isinstance(target, type) else owner
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return None, hints
        try:
            owner_hints = typing.get_type_hints(function)
        except Exception:  # unresolvable forward references: check names only
            owner_hints = {}
        params = [p for p in signature.parameters.values() if p.name != "self"]
        accepted |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        hints = {**{k: v for k, v in owner_hints.items() if k in accepted}, **hints}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return accepted, hints
        if not getattr(owner, "__module__", "").startswith("ftexp."):
            return None, hints
    return None, hints


def _check_type(value: Any, annotation: Any, key: str, problems: list[str]) -> None:
    if _conforms(value, annotation) is False:
        wrong = "wrong value" if typing.get_origin(annotation) is Literal else "wrong type"
        problems.append(f"{key}: {wrong}: expected {_describe(annotation)}{_got(value)}")


def _conforms(value: Any, annotation: Any) -> bool | None:
    """True or False when ``annotation`` says for sure; ``None`` when it cannot tell (Any, callables, generics)."""
    if annotation is Any or annotation is inspect.Parameter.empty or isinstance(annotation, str | typing.TypeVar):
        return _UNKNOWN
    if OmegaConf.is_dict(value) and "_target_" in value:
        return _UNKNOWN  # instantiated into whatever the target returns
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        answers = [_conforms(value, arg) for arg in args]
        return True if True in answers else (_UNKNOWN if _UNKNOWN in answers else False)
    if origin is Literal:
        return any(type(value) is type(arg) and value == arg for arg in args)
    if annotation is Instantiable:
        return _UNKNOWN
    if origin in (dict, collections.abc.Mapping) or annotation in (dict, collections.abc.Mapping):
        return OmegaConf.is_dict(value) or isinstance(value, dict)
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        return OmegaConf.is_list(value) or isinstance(value, list | tuple)
    if origin is not None:  # Iterable[...], Callable[...], type[...]: not decidable from a config value
        return _UNKNOWN
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation in (str, Path, PurePath, os.PathLike):
        return isinstance(value, str)
    if isinstance(annotation, type):
        if OmegaConf.is_dict(value) or OmegaConf.is_list(value):
            return _UNKNOWN
        return isinstance(value, annotation)
    return _UNKNOWN


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return " or ".join(repr(arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


_UNRESOLVABLE = object()


def _resolved(node: DictConfig, name: str, key: str, problems: list[str]) -> Any:
    """``node[name]`` with interpolations resolved; ``_UNRESOLVABLE`` (and a problem) when that fails."""
    if OmegaConf.is_missing(node, name):
        problems.append(f"{key}: missing value (???); set it on the command line: {key}=...")
        return _UNRESOLVABLE
    try:
        return node[name]
    except Exception as err:  # a resolver or a missing reference: the user must fix the config either way
        raw = OmegaConf.to_container(node, resolve=False).get(name)
        problems.append(f"{key}: cannot resolve {raw!r}: {_first_line(err)}")
        return _UNRESOLVABLE


# ---------------------------------------------------------------------------------------------- cross-group rules
def _check_lr_reinit(cfg: DictConfig, problems: list[str]) -> None:
    fts = scheduler_node(cfg)
    choice = cfg.lr_reinit.name
    schedule = cfg.schedule.name
    if fts is not None and fts.get("reinit_lr_cfg") is not None:
        problems.append(
            "schedule.callbacks.fts.reinit_lr_cfg: choose LR reinitialization with the lr_reinit group instead "
            "(lr_reinit=implicit, lr_reinit.reinit_lr_cfg=...)"
        )
    if choice == "implicit":
        if not cfg.lr_reinit.get("reinit_lr_cfg"):
            problems.append("lr_reinit.reinit_lr_cfg: lr_reinit=implicit needs the LR scheduler to start each phase")
        if fts is None:
            problems.append(f"lr_reinit=implicit: schedule={schedule} has no phase transitions to reinitialize at")


def _check_schedule_file(cfg: DictConfig, problems: list[str]) -> None:
    """A schedule file must exist and parse; matching it against the model's parameters happens once the model is
    built (:func:`ftexp.dry_run.resolve_run_schedule`)."""
    from ftexp.schedule import ScheduleError, load_schedule

    fts = scheduler_node(cfg)
    ft_schedule = fts.get("ft_schedule") if fts is not None else None
    if ft_schedule is None or (OmegaConf.is_dict(ft_schedule) and "_target_" in ft_schedule):
        return
    key = "schedule.callbacks.fts.ft_schedule"
    if isinstance(ft_schedule, str) and not Path(ft_schedule).is_file():
        problems.append(f"{key}: schedule file does not exist: {ft_schedule}")
        return
    try:
        load_schedule(ft_schedule)
    except ScheduleError as err:
        problems.append(f"{key}: {err}")


def _check_launcher(cfg: DictConfig, problems: list[str]) -> None:
    """Under the submitit SLURM launcher each task drives one device: Lightning reads the SLURM environment and
    expects ``tasks_per_node == devices`` and ``nodes == num_nodes``; a mismatch hangs or idles GPUs. Under the
    local_gpus launcher a job sees exactly ``gpus_per_job`` GPUs: a GPU trainer must use that many devices."""
    launcher = hydra_launcher(cfg)
    target = launcher.get("_target_") if launcher is not None else None
    if target == LOCAL_GPUS_LAUNCHER:
        devices, per_job = cfg.trainer.get("devices", 1), launcher.get("gpus_per_job")
        if cfg.trainer.get("accelerator") != "cpu" and isinstance(devices, int) and devices != per_job:
            problems.append(
                f"hydra.launcher.gpus_per_job={per_job} but trainer.devices={devices}: each job sees only its "
                "gpus_per_job GPUs, so they must be equal (set hardware.gpus_per_job)"
            )
    if target != SLURM_LAUNCHER:
        return
    pairs = (("tasks_per_node", "devices"), ("nodes", "num_nodes"))
    for launcher_key, trainer_key in pairs:
        ours, theirs = launcher.get(launcher_key), cfg.trainer.get(trainer_key, 1)
        if ours != theirs:
            problems.append(
                f"hydra.launcher.{launcher_key}={ours} but trainer.{trainer_key}={theirs}: under SLURM each task "
                f"drives one device, so they must be equal (set both, or hardware.gpus_per_node / hardware.nodes)"
            )


def hydra_launcher(cfg: DictConfig) -> DictConfig | None:
    """The launcher config: from ``cfg.hydra`` (Hydra callbacks see it) or the running job's Hydra config."""
    if "hydra" in cfg:
        return cfg.hydra.get("launcher")
    if HydraConfig.initialized():
        return HydraConfig.get().get("launcher")
    return None


def scheduler_node(cfg: DictConfig) -> DictConfig | None:
    """The schedule group's FinetuningScheduler node (``None`` for schedule=nofts)."""
    return cfg.schedule.callbacks.get("fts")


# ---------------------------------------------------------------------------------------------- Hydra integration
class ValidateConfig(HydraCallback):
    """Hydra callback (``hydra.callbacks`` in config.yaml): validate before Hydra creates the run or sweep dir.

    Hydra turns exceptions raised by callbacks into warnings and carries on, so an invalid config ends the process
    here: the problems go to stderr and the exit status is 1, as for Hydra's own composition errors.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate_or_exit(config, "hydra.run.dir")
        launcher = config.hydra.get("launcher")
        if launcher is not None and launcher.get("_target_") == SLURM_LAUNCHER:
            warnings.warn(
                "hydra.launcher is submitit_slurm, which Hydra uses in multirun mode only (python -m ftexp -m ...): "
                "this run trains on this machine",
                stacklevel=1,
            )

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate_or_exit(config, "hydra.sweep.dir")

    @staticmethod
    def _validate_or_exit(config: DictConfig, dir_key: str) -> None:
        # ${hydra:runtime.output_dir} resolves only once Hydra has set up the job: validate a copy in which it is the
        # directory Hydra is about to create, as run_job() will set it
        job = copy.deepcopy(config)
        with open_dict(job.hydra.runtime):
            job.hydra.runtime.output_dir = str(Path(str(OmegaConf.select(job, dir_key))).absolute())
        hydra_config = HydraConfig.instance()
        previous = hydra_config.cfg
        hydra_config.set_config(job)
        try:
            problems = config_problems(job)
        finally:
            hydra_config.cfg = previous
        if problems:
            print(ConfigError(problems), file=sys.stderr)
            sys.exit(1)


def unknown_override_hints(overrides: list[str], config_dir: Path, config_name: str = "config") -> list[str]:
    """For ``key=value`` command-line overrides whose key is not in the composed config, one line each saying the
    closest existing key (Hydra's own error for them names the key but suggests nothing)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
    except Exception:  # a syntax error: Hydra already said so
        return []

    def is_group(key: str) -> bool:
        return "/" in key or (config_dir / key).is_dir()

    plain = [o for o in parsed if not (o.is_add() or o.is_delete() or o.is_force_add()) and "@" not in o.key_or_group]
    keys = [o.key_or_group for o in plain if not is_group(o.key_or_group)]
    groups = [o.input_line for o in parsed if is_group(o.key_or_group) and not o.is_sweep_override()]
    if not keys:
        return []
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=groups, return_hydra_config=True)
    except Exception:  # the groups themselves do not compose: Hydra already said so
        return []
    hints = []
    for key in keys:
        node: Any = cfg
        for part in key.split("."):
            if not OmegaConf.is_dict(node) or part not in node:
                options = list(node) if OmegaConf.is_dict(node) else []
                hints.append(f"unknown key {key}{_did_you_mean(part, options)}")
                break
            try:
                node = node[part]
            except Exception:  # an interpolation that resolves only inside a job: nothing below it to suggest
                break
    return hints


# ---------------------------------------------------------------------------------------------- small helpers
def _did_you_mean(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, [str(o) for o in options], n=1, cutoff=0.6)
    return f", did you mean {close[0]}?" if close else ""


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _got(value: Any) -> str:
    if OmegaConf.is_dict(value) or isinstance(value, DictConfig):
        return " (got a mapping)"
    if OmegaConf.is_list(value) or isinstance(value, ListConfig):
        return " (got a list)"
    return f" (got {value!r}, {type(value).__name__})"


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
