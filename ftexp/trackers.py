"""Experiment trackers beside the run dir's own files: MLflow (``logger=mlflow``) and Weights & Biases
(``logger=wandb``), through Lightning's own loggers; ``pip install ".[trackers]"``.

What lands in a tracker: every metric the module logs (the Lightning logger sends them), the resolved config as
hyperparameters (:func:`log_config`, called for any logger: TensorBoard and CSV keep it in ``hparams.yaml``), and,
when the run ends, its files as artifacts: the resolved schedule, ``result.json`` and the composed config
(:func:`close_trackers`). A sweep's summary goes into the same MLflow store as its jobs (:func:`log_sweep_summary`).

Nothing here imports a tracker, or torch, at module level: the config checks import this module to say what is
missing (:func:`missing_modules`) before any run dir exists, and the sweep summary's Hydra callback imports it too.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from ftexp.record import RunRecord, RunStatus

if TYPE_CHECKING:
    from pytorch_lightning.loggers import Logger, MLFlowLogger

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install ".[trackers]"'
MLFLOW_TARGET = "ftexp.trackers.mlflow_logger"
# what each tracker logger needs importable, by the _target_ of its logger config; the local SQLite store of
# mlflow_logger needs SQLAlchemy and alembic, which mlflow-skinny leaves out
REQUIRED_MODULES: dict[str, tuple[str, ...]] = {
    MLFLOW_TARGET: ("mlflow", "sqlalchemy", "alembic"),
    "pytorch_lightning.loggers.MLFlowLogger": ("mlflow",),
    "pytorch_lightning.loggers.WandbLogger": ("wandb",),
}
# how an ftexp run ended, as MLFlowLogger.finalize takes it; an interrupted or requeued run: KILLED
MLFLOW_STATUS = {RunStatus.COMPLETED: "success", RunStatus.FAILED: "failed"}
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


def missing_modules(target: str) -> list[str]:
    """The modules the logger ``target`` (a ``_target_`` path) needs and this environment lacks."""
    return [module for module in REQUIRED_MODULES.get(target, ()) if not _importable(module)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module left half-imported, or set to None in sys.modules
        return False


def local_store(run_dir: str | Path) -> Path:
    """The directory of ``logger=mlflow``'s store when no tracking URI is set: the sweep dir for a sweep's job (the
    nearest directory above it holding Hydra's ``multirun.yaml``), so that the jobs and the sweep summary share one
    store, else the run dir itself, so that a run's files stay in its run dir. A file-system fact rather than
    Hydra's run mode, because every process of a job must agree on it, DDP's extra ranks too (Lightning starts them
    in Hydra's run mode)."""
    run_dir = Path(run_dir)
    # the nearest directory above holding multirun.yaml: a tuning's trials sit deeper, in tuning/<scenario>/trialNNN
    return next((parent for parent in run_dir.parents if (parent / "multirun.yaml").is_file()), run_dir)


def local_store_uri(store_dir: Path) -> str:
    return f"sqlite:///{store_dir.resolve() / STORE_FILE}"


def local_artifact_location(store_dir: Path) -> str:
    """Beside the SQLite file: left to MLflow, a local store's artifacts go to ``./mlruns`` of whatever directory
    the command ran in."""
    return (store_dir.resolve() / ARTIFACTS_DIR).as_uri()


def mlflow_logger(
    run_dir: str,
    experiment_name: str,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    tags: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MLFlowLogger:
    """Lightning's ``MLFlowLogger`` for the run in ``run_dir``, its run named ``run_name`` (default: the run dir's
    name, which for a sweep's job names its overrides) and tagged with the run dir.

    With ``tracking_uri`` unset the store is a SQLite file, ``mlflow.db``, in :func:`local_store`, with the
    artifacts in ``mlartifacts/`` beside it (:func:`local_artifact_location`): MLflow 3 refuses its old file store
    (``./mlruns``) unless told to allow it.
    """
    from pytorch_lightning.loggers import MLFlowLogger

    if tracking_uri is None:
        store = local_store(run_dir)
        tracking_uri = local_store_uri(store)
        with _store_lock(store):
            local_experiment(store, experiment_name)
    tags = {**(tags or {}), "run_dir": str(run_dir)}
    return MLFlowLogger(
        experiment_name=experiment_name,
        run_name=run_name or Path(run_dir).name,
        tracking_uri=tracking_uri,
        tags=tags,
        **kwargs,
    )


def local_experiment(store_dir: Path, experiment_name: str) -> str:
    """The id of ``experiment_name`` in the local store in ``store_dir``, both created when missing (the
    experiment's artifacts in :func:`local_artifact_location`)."""
    from mlflow import MlflowClient

    client = MlflowClient(local_store_uri(store_dir))
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(experiment_name, artifact_location=local_artifact_location(store_dir))


@contextmanager
def _store_lock(store_dir: Path) -> Iterator[None]:
    """One process at a time creates the local store's tables and experiment: a sweep's parallel jobs (joblib,
    local_gpus, SLURM tasks) start together, and MLflow's check-then-create races on a fresh SQLite file
    ("table experiments already exists")."""
    store_dir.mkdir(parents=True, exist_ok=True)
    with (store_dir / f"{STORE_FILE}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def log_config(loggers: Iterable[Logger], cfg: DictConfig) -> None:
    """Give every logger the resolved config as hyperparameters: MLflow params (flattened, ``model/backbone/...``),
    the wandb run's config, ``hparams.yaml`` for TensorBoard and CSV. Lightning logs the module's own
    hyperparameters beside them when the fit starts."""
    if not _rank_zero():
        return
    params = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(params)


def run_files(record: RunRecord) -> list[Path]:
    """The files of a run that belong in its tracker, those that exist: the resolved schedule, ``result.json`` and
    the config Hydra composed."""
    candidates = [record.schedule_path, record.result_file, Path(record.run_dir or ".") / ".hydra" / "config.yaml"]
    return [Path(path) for path in candidates if path is not None and Path(path).is_file()]


def log_file(logger: Logger, path: Path, base_dir: Path) -> bool:
    """Log ``path`` as an artifact of ``logger``'s run, under its path relative to ``base_dir`` (the run dir), when
    the logger is a tracker (MLflow, wandb); returns whether it did. TensorBoard and CSV write into the run dir,
    where the file already is."""
    from pytorch_lightning.loggers import MLFlowLogger, WandbLogger

    base_dir = base_dir if path.is_relative_to(base_dir) else path.parent  # a schedule written outside the run dir
    folder = path.parent.relative_to(base_dir).as_posix()
    if isinstance(logger, MLFlowLogger):
        logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=None if folder == "." else folder)
        return True
    if isinstance(logger, WandbLogger):
        # "now": copied into the run's files at once, so an offline run carries it too
        logger.experiment.save(str(path), base_path=str(base_dir), policy="now")
        return True
    return False


def close_trackers(loggers: Sequence[Logger], record: RunRecord) -> None:
    """The run has ended (``result.json`` is written): log its files (:func:`run_files`) to each tracker, set the
    MLflow run's status, and finish the wandb run (failed unless the run completed), so that the next run in this
    process (a sweep's next job under Hydra's basic launcher) starts its own rather than Lightning reusing this one.
    Called however the run ended; a tracker that fails here is a warning, as the run's own record is already on
    disk."""
    from pytorch_lightning.loggers import MLFlowLogger, WandbLogger

    if not _rank_zero():
        return
    files, run_dir = run_files(record), Path(record.run_dir or ".")
    for logger in loggers:
        if not isinstance(logger, MLFlowLogger | WandbLogger):
            continue
        try:
            for path in files:
                log_file(logger, path, run_dir)
            if isinstance(logger, WandbLogger):
                logger.experiment.finish(exit_code=0 if record.status == RunStatus.COMPLETED else 1)
            else:  # the MLflow run's status as result.json has it (Lightning's: how its last fit or test ended)
                logger.finalize(MLFLOW_STATUS.get(record.status, "KILLED"))
        except Exception as err:
            log.warning(f"could not log the run's files to {type(logger).__name__}: {type(err).__name__}: {err}")


def log_sweep_summary(config: DictConfig) -> str | None:
    """Log the sweep summary (the ``.md`` and ``.csv`` files in the sweep dir, and its plots) as the artifacts of an
    MLflow run named ``<experiment> summary``, in the store and experiment of the sweep's jobs, when the sweep ran
    with ``logger=mlflow``; returns the run's id (``None``: not an MLflow sweep, or it failed). Like the summary, a
    by-product: a failure is a warning, never the sweep's."""
    node = OmegaConf.select(config, "logger", default=None)
    if node is None or node.get("_target_") != MLFLOW_TARGET:
        return None
    try:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        run_id = _log_summary_run(sweep_dir, str(node.experiment_name), node.get("tracking_uri"))
    except Exception as err:
        log.warning(f"could not log the sweep summary to MLflow: {type(err).__name__}: {err}")
        return None
    log.info(f"sweep summary logged to MLflow, run {run_id}")
    return run_id


def _log_summary_run(sweep_dir: Path, experiment_name: str, tracking_uri: str | None) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri or local_store_uri(sweep_dir))
    if tracking_uri is None:
        with _store_lock(sweep_dir):
            experiment_id = local_experiment(sweep_dir, experiment_name)
    else:
        experiment = client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
    run = client.create_run(experiment_id, run_name=f"{experiment_name} summary", tags={"sweep_dir": str(sweep_dir)})
    for path in sorted([*sweep_dir.glob("*.md"), *sweep_dir.glob("*.csv")]):
        client.log_artifact(run.info.run_id, str(path))
    if (sweep_dir / "plots").is_dir():
        client.log_artifacts(run.info.run_id, str(sweep_dir / "plots"), artifact_path="plots")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _rank_zero() -> bool:
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank == 0
