"""Bad input to `python -m ftexp`: each mistake fails before training with one clear message naming it, and leaves
an earlier run's directory byte-for-byte as it was.

The earlier run is a real (short) run; every bad command is pointed at a fresh `hydra.run.dir`. Mistakes Hydra or
the config validation catch fail before that directory exists; a schedule that does not fit the model fails once the
model is built, before any callback, logger or trainer exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ftexp.train import run
from tests.helpers import compose_config, python_m_ftexp

OTHER_MODEL_SCHEDULE = """\
# an explicit schedule written for DeBERTa-v3-base
0:
  params: [model.classifier.*, model.pooler.*]
1:
  params: [model.deberta.encoder.layer.11.*]
"""


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(directory)): (path.read_bytes() if path.is_file() else b"", path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
    }


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A finished two-epoch run: checkpoints, TensorBoard events, resolved schedule, result.json."""
    run_dir = tmp_path_factory.mktemp("earlier") / "run"
    quick = ["trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "test=false"]
    quick += ["trainer.log_every_n_steps=1", "schedule.callbacks.fts.max_depth=0"]
    cfg = compose_config(run_dir, "data.synthetic.n_train=64", *quick)
    assert run(cfg)["status"] == "completed"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "result.json").is_file()
    return run_dir


def other_model_schedule(directory: Path) -> str:
    path = directory / "deberta_v3_base.yaml"
    path.write_text(OTHER_MODEL_SCHEDULE)
    return f"schedule.callbacks.fts.ft_schedule={path}"


CASES = {
    "unknown group option": (
        lambda tmp: ["schedule=gradual"],
        ["Could not find 'schedule/gradual'", "Available options in 'schedule'", "freeze_unfreeze"],
    ),
    "unknown key": (
        lambda tmp: ["trainer.max_epoch=3"],
        ["invalid config: unknown key trainer.max_epoch, did you mean max_epochs?"],
    ),
    "wrong type": (
        lambda tmp: ["seed=abc"],
        ["invalid config: seed: wrong type: expected int (got 'abc', str)"],
    ),
    "missing schedule file": (
        lambda tmp: ["schedule.callbacks.fts.ft_schedule=/nope.yaml"],
        ["invalid config: schedule.callbacks.fts.ft_schedule: schedule file does not exist: /nope.yaml"],
    ),
    "schedule of another model": (
        lambda tmp: [other_model_schedule(tmp)],
        [
            "invalid config: schedule.callbacks.fts.ft_schedule (model SequenceClassifier): ",
            "phase 0, key 'params'] matches no parameter of the model",
            "model.pooler.*",
        ],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_command_fails_before_training_with_one_message_and_touches_no_earlier_run(tmp_path, earlier_run, case):
    overrides, messages = CASES[case]
    before = snapshot(earlier_run)
    fresh = tmp_path / "fresh"

    done = python_m_ftexp(tmp_path, *overrides(tmp_path), f"hydra.run.dir={fresh}")

    assert done.returncode == 1
    for message in messages:
        assert message in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, "one message, no stack trace"
    assert snapshot(earlier_run) == before
    assert not (tmp_path / "outputs").exists()
    if case == "schedule of another model":  # found once the model exists: Hydra has made the fresh dir by then
        assert not (fresh / "checkpoints").exists() and not (fresh / "tensorboard").exists()
        assert "matches no parameter" in (fresh / "result.json").read_text()
    else:
        assert not fresh.exists(), "refused before Hydra created the run dir"
