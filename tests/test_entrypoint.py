"""What `python -m ftexp` prints and leaves behind: a console that shows the ftexp: lines and the outputs block (the
config tree goes to the run dir, known noise is silenced), run dirs named by model and data, a dry run that writes
nothing, and one ftexp message for a command-line key the config does not have."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytest
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from ftexp.__main__ import quiet_known_noise
from ftexp.train import save_config_tree
from tests.helpers import compose_config, python_m_ftexp

# `python -m ftexp debug=limit` printed 162 lines before the config tree left the console (the tree alone: 121), 41
# after; the budget leaves room for a few more lines, not for a tree or a page of warnings
CONSOLE_LINE_BUDGET = 60


def fake_srun(directory: Path) -> dict[str, str]:
    """An environment whose PATH holds an `srun`, as on a machine with SLURM installed, where Lightning warns on
    every local run that srun is not used."""
    srun = directory / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    return {"PATH": f"{srun.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.mark.slow
def test_the_demo_console_shows_transitions_and_outputs_within_a_line_budget(tmp_path):
    not_in_a_job = [name for name in os.environ if name.startswith("SLURM_")]
    done = python_m_ftexp(tmp_path, "debug=limit", env=fake_srun(tmp_path), unset=not_in_a_job)
    assert done.returncode == 0, done.stderr[-3000:]
    console = (done.stdout + done.stderr).splitlines()

    assert len(console) <= CONSOLE_LINE_BUDGET, "\n".join(console)
    transitions = [line for line in console if "ftexp: epoch" in line]
    assert len(transitions) == 2 and "phase 1/2" in transitions[0] and "phase 2/2" in transitions[1]
    outputs = console.index(next(line for line in console if line.endswith("outputs:")))
    block = [line.split()[0] for line in console[outputs + 1 :]]
    assert block[:2] == ["phases", "metrics"] and {"run", "result", "best", "last"} <= set(block)

    text = "\n".join(console)
    assert "Tip:" not in text, "Lightning's litlogger tip"
    assert "`srun` command is available" not in text
    assert "LeafSpec" not in text, "torch's deprecation note to Lightning"
    # the config tree is in the run dir, and the console says where, once
    (run_dir,) = (tmp_path / "outputs" / "demo" / "tiny-synthetic" / "explicit").iterdir()  # named by model, data
    tree_lines = [line for line in console if "config tree:" in line]
    assert len(tree_lines) == 1 and tree_lines[0].endswith(str(run_dir / "config_tree.log"))
    assert "├── model" not in text and "_target_" not in text
    assert "├── model" in (run_dir / "config_tree.log").read_text()
    assert f"run dir      {run_dir}" in text


def test_known_noise_is_silenced_by_message_and_category_only():
    lightning_log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    filters = list(lightning_log.filters)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quiet_known_noise()
            leaf_spec = "`isinstance(treespec, LeafSpec)` is deprecated, use ..."
            warnings.warn(leaf_spec, FutureWarning, stacklevel=1)
            warnings.warn("The `srun` command is available on your system but is not used. HINT: ...", stacklevel=1)
            warnings.warn(leaf_spec, UserWarning, stacklevel=1)
            warnings.warn("another FutureWarning", FutureWarning, stacklevel=1)
    finally:
        lightning_log.filters[:] = filters
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, leaf_spec),
        (FutureWarning, "another FutureWarning"),
    ]


def test_the_config_tree_is_written_whole_to_the_run_dir_and_the_console_gets_one_line(tmp_path, caplog):
    deep = tmp_path / ("a_deep_run_dir_" * 10)  # values longer than any terminal is wide
    cfg = compose_config(deep)
    caplog.set_level(logging.INFO, logger="ftexp.train")
    deep.mkdir()

    save_config_tree(cfg, deep / "config_tree.log")

    tree = (deep / "config_tree.log").read_text()
    assert f"checkpoint_dir: {deep}/checkpoints\n" in tree, "no value is cut"
    assert "├── schedule" in tree and "└── logger" in tree
    assert [record.getMessage() for record in caplog.records] == [f"config tree: {deep / 'config_tree.log'}"]


def test_under_ddp_only_rank_0_writes_the_config_tree(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="ftexp.train")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    save_config_tree(compose_config(tmp_path), tmp_path / "config_tree.log")
    assert list(tmp_path.iterdir()) == [] and caplog.records == []


# ---------------------------------------------------------------------------------------------- run dirs
@pytest.mark.parametrize(
    ("overrides", "prefix"),
    [
        ((), "outputs/demo/tiny-synthetic/explicit/"),
        (("model=minilm", "schedule=explicit"), "outputs/demo/minilm-synthetic/explicit/"),
        (("experiment=offline_transfer", "schedule=implicit"), "outputs/offline_transfer/minilm-transfer/implicit/"),
        (("experiment=rte_deberta", "schedule=nofts"), "outputs/rte_deberta/deberta_v3_base-rte/nofts/"),
    ],
)
def test_a_run_dir_names_the_model_and_data_options_it_ran(overrides, prefix):
    cfg = compose_config(None, *overrides, hydra=True)
    run_dir = str(cfg.hydra.run.dir)
    assert run_dir.startswith(prefix) and len(run_dir) > len(prefix), run_dir


# ---------------------------------------------------------------------------------------------- dry run
@pytest.mark.slow
def test_a_dry_run_prints_the_plan_and_leaves_nothing_behind(tmp_path):
    done = python_m_ftexp(tmp_path, "dry_run=true")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "phase plan of SequenceClassifier" in done.stdout and "no problems found" in done.stdout
    assert list(tmp_path.iterdir()) == [], "no outputs/, no .hydra/, no train.log"


@pytest.mark.slow
def test_a_dry_run_that_finds_problems_fails_and_leaves_nothing_behind(tmp_path):
    schedule = tmp_path / "other_model.yaml"
    schedule.write_text("0:\n  params: [model.deberta.encoder.layer.11.*]\n")
    done = python_m_ftexp(tmp_path, "dry_run=true", f"schedule.callbacks.fts.ft_schedule={schedule}")
    assert done.returncode == 1
    assert "1 problem(s):" in done.stdout and "matches no parameter of the model" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["other_model.yaml"]


# ---------------------------------------------------------------------------------------------- override typos
@pytest.mark.slow
def test_a_mistyped_key_gets_one_ftexp_message_with_the_closest_key_and_no_plus_advice(tmp_path):
    done = python_m_ftexp(tmp_path, "trainer.max_epoch=3")
    output = done.stdout + done.stderr

    assert done.returncode != 0
    assert output.count("did you mean max_epochs?") == 1
    assert output.strip() == "invalid config: unknown key trainer.max_epoch, did you mean max_epochs?"
    assert "+trainer.max_epoch" not in output and "HYDRA_FULL_ERROR" not in output
    assert list(tmp_path.iterdir()) == []
