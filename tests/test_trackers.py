"""logger=mlflow and logger=wandb: a run's metrics, its resolved config and its resolved schedule land in the
tracker, read back with the tracker's own client (MLflow) or record type (wandb's offline ``.wandb`` file), with no
network: MLflow writes its local SQLite store, wandb runs offline. A sweep's jobs and its summary share one store.

Skipped, saying so, without the trackers extra (``pip install ".[trackers]"``); without it ``logger=mlflow`` is
refused before anything runs (tested here whatever is installed).
"""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest
import torch
import yaml

from ftexp.config import ConfigError, validate_config
from ftexp.sweeps.callback import SummarizeSweep
from ftexp.trackers import MLFLOW_TARGET, missing_modules
from ftexp.train import run
from tests.helpers import compose_config, python_m_ftexp, short_demo

# two short epochs of the demo (explicit schedule): 4 training and 2 validation batches each
TWO_EPOCHS = short_demo(2)
SCHEDULE_FILE = "SequenceClassifier_ft_schedule.yaml"


def needs(target: str):
    missing = missing_modules(target)
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed: pip install '.[trackers]'")


@pytest.fixture
def no_tracking_server(monkeypatch, tmp_path_factory):
    """MLflow on the run's local store, wandb offline and quiet, their caches out of the home directory."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cache = tmp_path_factory.getbasetemp() / "wandb_home"
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_CACHE_DIR": str(cache / "cache"),
        "WANDB_CONFIG_DIR": str(cache / "config"),
        "WANDB_DATA_DIR": str(cache / "data"),
    }.items():
        monkeypatch.setenv(name, value)


def run_in_process(run_dir: Path, *overrides: str) -> dict:
    threads = torch.get_num_threads()  # run() applies cpu_threads to this process
    try:
        # quoted: a sweep job's dir name holds "="
        return run(compose_config(None, f"paths.output_dir='{run_dir}'", *overrides, *TWO_EPOCHS))
    finally:
        torch.set_num_threads(threads)


def mlflow_runs(store_dir: Path, experiment: str) -> dict:
    """The runs of ``experiment`` in the SQLite store in ``store_dir``, by run name."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store_dir / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {found_run.info.run_name: (client, found_run) for found_run in found}


def assert_mlflow_run_holds_the_run(client, mlflow_run, result: dict, run_dir: Path) -> None:
    import mlflow.artifacts

    run_id = mlflow_run.info.run_id
    history = {name: [m.value for m in client.get_metric_history(run_id, name)] for name in mlflow_run.data.metrics}
    assert history["val_loss"] == pytest.approx([row["val_loss"] for row in result["history"]])
    assert history["val_acc"] == pytest.approx([row["val_acc"] for row in result["history"]])
    assert len(history["train_loss"]) == 2 and history["test_acc"] == pytest.approx([result["test"]["test_acc"]])
    params = mlflow_run.data.params
    # the resolved config, flattened, beside the module's own hyperparameters (Lightning's)
    assert (params["seed"], params["schedule/name"], params["trainer/max_epochs"]) == ("42", "explicit", "2")
    assert params["paths/output_dir"] == str(run_dir) and params["backbone/hidden_size"] == "64"
    assert mlflow_run.data.tags["scenario"] == "explicit" and mlflow_run.info.status == "FINISHED"
    schedule = mlflow.artifacts.load_text(f"{mlflow_run.info.artifact_uri}/{SCHEDULE_FILE}")
    assert schedule == (run_dir / SCHEDULE_FILE).read_text()
    assert {a.path for a in client.list_artifacts(run_id)} >= {SCHEDULE_FILE, "result.json"}


@pytest.mark.slow
@needs(MLFLOW_TARGET)
def test_a_sweep_job_and_the_sweep_summary_land_in_one_mlflow_store_in_the_sweep_dir(tmp_path, no_tracking_server):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "multirun.yaml").write_text("{}\n")  # what marks a sweep dir (Hydra writes it before the jobs)
    job_dir = sweep_dir / "0_seed=42"
    result = run_in_process(job_dir, "logger=mlflow")

    assert (sweep_dir / "mlflow.db").is_file() and not (job_dir / "mlflow.db").exists()
    config = compose_config(sweep_dir, "logger=mlflow", f"hydra.sweep.dir={sweep_dir}", hydra=True)
    SummarizeSweep(plots=False).on_multirun_end(config)

    runs = mlflow_runs(sweep_dir, "demo")
    assert set(runs) == {"0_seed=42", "demo summary"}
    assert_mlflow_run_holds_the_run(*runs["0_seed=42"], result, job_dir)
    client, summary = runs["demo summary"]
    logged = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"summary.md", "summary.csv", "jobs.csv"} <= logged
    assert all((sweep_dir / name).is_file() for name in logged)


@pytest.mark.slow
@needs(MLFLOW_TARGET)
def test_python_m_ftexp_logger_mlflow_keeps_its_store_and_the_composed_config_in_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    done = python_m_ftexp(
        tmp_path, "logger=mlflow", f"hydra.run.dir={run_dir}", *TWO_EPOCHS, unset=["MLFLOW_TRACKING_URI"]
    )
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((run_dir / "result.json").read_text())
    runs = mlflow_runs(run_dir, "demo")
    assert list(runs) == ["run"], "one MLflow run, named by its run dir"
    assert_mlflow_run_holds_the_run(*runs["run"], result, run_dir)
    client, mlflow_run = runs["run"]
    assert [a.path for a in client.list_artifacts(mlflow_run.info.run_id, ".hydra")] == [".hydra/config.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "nothing is written outside the run dir"


def wandb_records(path: Path) -> list:
    """The records of an offline ``.wandb`` file, as wandb's own protobuf ``Record`` s. (The framing is LevelDB's
    log format: 32 KiB blocks of chunks, each with a 7-byte header; wandb no longer ships a Python reader.)"""
    from wandb.proto import wandb_internal_pb2

    data, block, header = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B", f"{path} is not a .wandb file"
    records, chunks, position = [], [], header
    while position + header <= len(data):
        if block - position % block < header:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack_from("<IHB", data, position)
        if length == kind == 0:
            break
        chunks.append(data[position + header : position + header + length])
        position += header + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


@pytest.mark.slow
@needs("pytorch_lightning.loggers.WandbLogger")
def test_logger_wandb_runs_offline_and_its_run_file_holds_the_metrics_config_and_schedule(tmp_path, no_tracking_server):
    import wandb

    result = run_in_process(tmp_path, "logger=wandb")

    assert wandb.run is None, "the wandb run ends with the ftexp run: the next run in this process starts its own"
    # wandb's service closes the run file in its own time after finish() (at the latest when the process exits):
    # stop the service so that it has, before reading the file in this process
    wandb.teardown()
    (offline_run,) = (tmp_path / "wandb").glob("offline-run-*")
    (run_file,) = offline_run.glob("run-*.wandb")
    records = wandb_records(run_file)
    history = [{"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item} for r in records]
    assert [row["val_loss"] for row in history if "val_loss" in row] == pytest.approx(
        [row["val_loss"] for row in result["history"]]
    )
    assert [row["test_acc"] for row in history if "test_acc" in row] == pytest.approx([result["test"]["test_acc"]])
    config = {u.key: json.loads(u.value_json) for r in records if r.HasField("config") for u in r.config.update}
    assert (config["seed"], config["schedule"]["name"], config["trainer"]["max_epochs"]) == (42, "explicit", 2)
    saved = {f.path for r in records if r.HasField("files") for f in r.files.files}
    assert {SCHEDULE_FILE, "result.json"} <= saved
    assert yaml.safe_load((offline_run / "files" / SCHEDULE_FILE).read_text()) == yaml.safe_load(
        (tmp_path / SCHEDULE_FILE).read_text()
    )
    assert [r.exit.exit_code for r in records if r.HasField("exit")] == [0]


def test_logger_mlflow_without_the_extra_is_refused_by_the_config_check_saying_what_to_install(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real_find_spec(name, *a)
    )
    with pytest.raises(ConfigError, match=r"logger: ftexp.trackers.mlflow_logger needs mlflow\b.*\[trackers\]"):
        validate_config(compose_config(tmp_path, "logger=mlflow"))
