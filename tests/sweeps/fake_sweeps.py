"""Hand-written sweep directories: job dirs laid out as Hydra and ``ftexp.train.run`` leave them, with the
``result.json`` fields each test needs (and, for older files, without the newer ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def result(
    scenario: str = "explicit",
    seed: int = 1,
    status: str = "completed",
    val_acc: float = 0.5,
    val_loss: float = 0.7,
    test_acc: float | None = None,
    test_loss: float | None = None,
    wall_time_s: float = 60.0,
    **fields: Any,
) -> dict[str, Any]:
    """A ``result.json`` payload as ``ftexp.train.run`` writes it before the overrides/hardware/attempts fields."""
    payload: dict[str, Any] = {
        "name": "demo",
        "scenario": scenario,
        "seed": seed,
        "status": status,
        "resumed_from": None,
        "epochs_run": 6,
        "best": {"monitor": "val_loss", "mode": "min", "epoch": 3, "val_loss": val_loss, "val_acc": val_acc},
        "final": {"epoch": 5, "val_loss": val_loss + 0.01, "val_acc": val_acc},
        "phases_run": [{"depth": 0, "start_epoch": 0}],
        "final_depth": 0,
        "history": [],
        "wall_time_s": wall_time_s,
    }
    if test_acc is not None or test_loss is not None:
        payload["test"] = {"test_acc": test_acc, "test_loss": test_loss, "checkpoint": None}
    payload.update(fields)
    return payload


def write_job(
    sweep_dir: Path,
    subdir: str,
    overrides: list[str] | None = None,
    payload: dict[str, Any] | None = None,
    num: int | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """A job dir: ``.hydra/{overrides,hydra,config}.yaml`` when ``overrides`` is given, ``result.json`` when
    ``payload`` is (else the job is still running, or was killed)."""
    job_dir = sweep_dir / subdir
    job_dir.mkdir(parents=True)
    if overrides is not None:
        hydra_dir = job_dir / ".hydra"
        hydra_dir.mkdir()
        (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num, "name": "train"}}}))
        (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config or {"seed": 0, "trainer": {}}))
    if payload is not None:
        payload = {"run_dir": str(job_dir), "result_file": str(job_dir / "result.json"), **payload}
        (job_dir / "result.json").write_text(json.dumps(payload))
    return job_dir


def compare_schedules(sweep_dir: Path) -> Path:
    """A 3-scenario x 2-seed sweep as ``+sweep=compare_schedules 'seed=1,2'`` leaves it, one job of each kind that
    did not complete: explicit seed 2 failed, implicit seed 2 is still running (no result.json)."""
    metrics = {
        ("nofts", 1): (0.60, 0.66),
        ("nofts", 2): (0.62, 0.64),
        ("implicit", 1): (0.70, 0.55),
        ("explicit", 1): (0.80, 0.45),
        ("explicit", 2): (0.10, 2.00),
    }
    for num, (schedule, seed) in enumerate(
        [("nofts", 1), ("nofts", 2), ("implicit", 1), ("implicit", 2), ("explicit", 1), ("explicit", 2)]
    ):
        overrides = ["+sweep=compare_schedules", f"schedule={schedule}", f"seed={seed}"]
        payload = None
        if (schedule, seed) in metrics:
            acc, loss = metrics[schedule, seed]
            status = "failed" if (schedule, seed) == ("explicit", 2) else "completed"
            payload = result(schedule, seed, status, val_acc=acc, val_loss=loss, overrides=overrides)
            if status == "failed":
                payload["error"] = "RuntimeError: CUDA out of memory"
        write_job(sweep_dir, f"{num}_{schedule}", overrides, payload, num=num)
    return sweep_dir
