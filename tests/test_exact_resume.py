"""A run interrupted at an epoch end and started again in its run dir ends exactly where the uninterrupted run ends:
the same history (train and validation metrics of every epoch), phase transitions, best epoch, best and test
metrics, to 1e-6. The demo experiment, shortened (4 training batches of a 256-example set, dropout and shuffling
as in the demo), with its 3-phase schedule: the transitions, the restore-best and the phase-2 LR scheduler all come
after the resume. Its LR schedulers do not depend on ``max_epochs``, so stopping a run with a smaller
``max_epochs`` is an epoch-end interruption like any other.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from ftexp.train import run
from tests.helpers import compose_config, python_m_ftexp, signal_self_at
from tests.killed_run import kill_when_the_writer_stops

DEMO = [
    "trainer.max_epochs=8",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.synthetic.n_train=256",
    "data.synthetic.n_validation=64",
    "data.synthetic.n_test=64",
    "logger=csv",
]
SAME = 1e-6


def run_in_process(output_dir: Path, *overrides: str) -> dict[str, Any]:
    threads = torch.get_num_threads()  # run() applies cpu_threads to this process
    try:
        return run(compose_config(output_dir, *DEMO, *overrides))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, Any]:
    return run_in_process(tmp_path_factory.mktemp("uninterrupted"))


def outcome(result: dict[str, Any]) -> dict[str, Any]:
    """What a run found, without what depends on the interruption (times, files, attempts, how restore-best read
    the best state: from memory, or from disk after a resume)."""
    return {
        "history": result["history"],
        "transitions": [
            {key: value for key, value in transition.items() if key not in ("seconds", "restore")}
            for transition in result["transitions"]
        ],
        "best": result["best"],
        "best_score": result["best_score"],
        "final": result["final"],
        "phases_run": result["phases_run"],
        "reached_depth": result["reached_depth"],
        "test": {name: value for name, value in (result.get("test") or {}).items() if name != "checkpoint"},
    }


def flat(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flat(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from flat(item, f"{path}[{index}]")
    else:
        yield path, value


def differences(resumed: dict[str, Any], uninterrupted: dict[str, Any]) -> list[str]:
    """Every value of the resumed run's outcome that is not the uninterrupted run's (numbers to ``SAME``), in the
    order of the uninterrupted run's record: the first epoch that differs comes first."""
    ours, theirs = dict(flat(outcome(resumed))), dict(flat(outcome(uninterrupted)))
    found = []
    for path in [*theirs, *(path for path in ours if path not in theirs)]:
        if path not in ours or path not in theirs:
            found.append(f"{path}: only in the {'uninterrupted' if path in theirs else 'resumed'} run")
            continue
        a, b = ours[path], theirs[path]
        numbers = isinstance(a, float | int) and isinstance(b, float | int)
        if (abs(a - b) > SAME) if numbers else a != b:
            found.append(f"{path}: resumed {a} vs uninterrupted {b}")
    return found


def test_a_run_stopped_after_epoch_1_and_resumed_ends_as_the_uninterrupted_run(tmp_path, uninterrupted):
    stopped = run_in_process(tmp_path, "trainer.max_epochs=2", "test=false")
    resumed = run_in_process(tmp_path)

    assert stopped["epochs_run"] == 2 and not stopped["transitions"], "the phases all begin after the resume"
    assert [(a["start_epoch"], a["end_epoch"]) for a in resumed["attempts"]] == [(0, 2), (2, 8)]
    assert len(uninterrupted["transitions"]) == 2
    assert differences(resumed, uninterrupted) == []


@pytest.mark.slow
def test_with_dataloader_workers_a_resumed_run_ends_as_the_uninterrupted_run_too(tmp_path):
    workers = "data.num_workers=2"  # seeded from the iterator's base seed, which the resumed run draws as the first did
    uninterrupted = run_in_process(tmp_path / "uninterrupted", workers)
    run_in_process(tmp_path / "resumed", workers, "trainer.max_epochs=2", "test=false")
    resumed = run_in_process(tmp_path / "resumed", workers)

    assert differences(resumed, uninterrupted) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("killed_in_epoch", "where", "resumes_after"),
    [(1, "after", 1), (2, "during", 1)],
    ids=["after epoch 1's checkpoint", "while epoch 2's checkpoint is written"],
)
def test_a_run_killed_at_a_checkpoint_and_started_again_ends_as_the_uninterrupted_run(
    tmp_path, uninterrupted, killed_in_epoch, where, resumes_after
):
    run_dir = tmp_path / "run"
    args = [*DEMO, f"hydra.run.dir={run_dir}"]
    last = run_dir / "checkpoints" / "last.ckpt"
    printed = kill_when_the_writer_stops(tmp_path, killed_in_epoch, where, *args)
    # last.ckpt is renamed into place whole: what it holds now is the epoch the next attempt resumes after
    assert torch.load(last, weights_only=False)["epoch"] == resumes_after, printed[-3000:]

    started_again = python_m_ftexp(tmp_path, *args)
    assert started_again.returncode == 0, started_again.stderr[-3000:]
    resumed = json.loads((run_dir / "result.json").read_text())
    assert [a["status"] for a in resumed["attempts"]] == ["died", "completed"], "the killed attempt is listed"
    assert resumed["attempts"][-1]["start_epoch"] == resumes_after + 1
    assert differences(resumed, uninterrupted) == []


@pytest.mark.parametrize(
    "signalled_batch",
    [1, 3],
    ids=["mid-epoch", "last batch: the stop waits for the epoch's validation and one more batch"],
)
def test_a_run_stopped_by_sigterm_inside_an_epoch_and_started_again_ends_as_the_uninterrupted_run(
    tmp_path, uninterrupted, signalled_batch
):
    with pytest.raises(SIGTERMException):
        run_in_process(tmp_path, *signal_self_at(signal.SIGTERM, epoch=2, batch=signalled_batch))
    stopped = json.loads((tmp_path / "result.json").read_text())
    resumed = run_in_process(tmp_path)

    assert stopped["status"] == "interrupted"
    last_trained = stopped["history"][-1]["epoch"] if stopped["history"] else None
    assert last_trained == (1 if signalled_batch < 3 else 2), "the epoch it stopped in is not in the history yet"
    assert [a["status"] for a in resumed["attempts"]] == ["interrupted", "completed"]
    assert differences(resumed, uninterrupted) == []


def test_under_a_step_interval_lr_scheduler_a_run_stopped_inside_an_epoch_ends_as_the_uninterrupted_run(tmp_path):
    """ulmfit: slanted triangular lrs stepped every batch, sized from the run's steps (which makes Lightning create
    the first training iterator early), and a block thawed every epoch; the epoch's logged lrs are those of its
    start, in the resumed run too."""
    uninterrupted = run_in_process(tmp_path / "uninterrupted", "schedule=ulmfit")
    with pytest.raises(SIGTERMException):
        run_in_process(tmp_path / "resumed", "schedule=ulmfit", *signal_self_at(signal.SIGTERM, epoch=2, batch=1))
    resumed = run_in_process(tmp_path / "resumed", "schedule=ulmfit")

    assert len(uninterrupted["transitions"]) == 4
    assert differences(resumed, uninterrupted) == []
