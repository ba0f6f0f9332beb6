"""ftexp against the real finetuning-scheduler package: the same scenario, epoch by epoch, must look the same.

Each scenario runs once through FTS and once through ftexp (see ``harness``); at every epoch the depth, the
trainable parameters, the number of optimizer groups, each group's lr, weight decay and parameters, and the LR
scheduler classes must agree, and so must the final weights. Differences ftexp makes on purpose (README,
"Differences from FTS") are not exercised here: the ``blocks`` implicit default (these runs ask for ``naive``),
DDP re-wrapping, and DictConfig schedules.
"""

from __future__ import annotations

import pytest

from tests.fts_parity.harness import Scenario, differences, run_ftexp, run_fts

pytest.importorskip("finetuning_scheduler", reason="the differential suite needs FTS: pip install -e '.[test]'")
pytestmark = pytest.mark.slow

HEAD = ["model.classifier.bias", "model.classifier.weight"]
POOLER_AND_NORM = [
    "model.pooler.dense.bias",
    "model.pooler.dense.weight",
    "model.deberta.encoder.LayerNorm.bias",
    "model.deberta.encoder.LayerNorm.weight",
]
LAYER_1 = ["model.deberta.encoder.layer.1.*"]
LAYER_0 = ["model.deberta.encoder.layer.0.*", "model.deberta.encoder.rel_embeddings.weight"]

# patience 1: phase 0 ends after epoch 2 (no improvement on epoch 1's best), phase 1 after epoch 4, and the final
# phase's patience ends the run after epoch 6; the best epoch always precedes the transition, so restore_best matters
THREE_PHASE_LOSSES = [1.0, 0.9, 0.95, 0.8, 0.85, 0.7, 0.75, 0.72, 0.71]


def three_phases(**phase_extras: dict) -> dict:
    schedule = {0: {"params": HEAD}, 1: {"params": POOLER_AND_NORM, "lr": 1e-4}, 2: {"params": LAYER_1, "lr": 5e-5}}
    for depth, extra in phase_extras.items():
        schedule[int(depth[-1])].update(extra)
    return schedule


def step_lr(gamma: float, **extra) -> dict:
    return {
        "lr_scheduler_init": {
            "class_path": "torch.optim.lr_scheduler.StepLR",
            "init_args": {"step_size": 1, "gamma": gamma},
        },
        "pl_lrs_cfg": {"interval": "epoch", "frequency": 1, "name": "reinit_lr"},
        **extra,
    }


def warm_restarts(**extra) -> dict:
    return {
        "lr_scheduler_init": {
            "class_path": "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts",
            "init_args": {"T_0": 3, "T_mult": 2, "eta_min": 1.0e-07},
        },
        "pl_lrs_cfg": {"interval": "epoch", "frequency": 1, "name": "reinit_lr"},
        **extra,
    }


SCENARIOS = [
    Scenario("early_stopping_restore_best", three_phases(), THREE_PHASE_LOSSES),
    Scenario("early_stopping_no_restore", three_phases(), THREE_PHASE_LOSSES, {"restore_best": False}),
    Scenario(
        "epoch_transitions_only",
        # FTS wants a max_transition_epoch in the last phase too (ftexp does not: nothing follows it)
        three_phases(p0={"max_transition_epoch": 2}, p1={"max_transition_epoch": 4}, p2={"max_transition_epoch": 6}),
        [1.0, 0.9, 0.95, 0.8, 0.85, 0.7, 0.72, 0.71, 0.7, 0.69],
        {"epoch_transitions_only": True},
    ),
    Scenario(
        "max_transition_epoch_with_early_stopping",
        three_phases(p0={"max_transition_epoch": 1}),
        [1.0, 0.9, 0.8, 0.85, 0.7, 0.75, 0.72],
    ),
    Scenario(
        "final_phase_max_transition_epoch_extends_max_epochs",
        three_phases(p0={"max_transition_epoch": 1}, p1={"max_transition_epoch": 3}, p2={"max_transition_epoch": 7}),
        [1.0, 0.9, 0.8, 0.85, 0.7, 0.75, 0.72, 0.71, 0.7],
        {"epoch_transitions_only": True},
        trainer_max_epochs=5,  # FTS trains on to epoch 7, the final phase's max_transition_epoch
    ),
    Scenario(
        # phase 1 never beats phase 0's best: the transition to phase 2 restores a phase-0 state, two phases back
        "best_from_an_earlier_phase",
        three_phases(p1={"new_lr_scheduler": step_lr(0.7, init_pg_lrs=[2.0e-4])}),
        [1.0, 0.9, 0.95, 0.92, 0.93, 0.8, 0.85, 0.84],
    ),
    Scenario("max_depth_1", three_phases(), THREE_PHASE_LOSSES, {"max_depth": 1}),
    Scenario(
        "max_depth_with_a_final_max_transition_epoch",
        three_phases(p0={"max_transition_epoch": 1}, p1={"max_transition_epoch": 3}, p2={"max_transition_epoch": 7}),
        [1.0, 0.9, 0.8, 0.85, 0.7, 0.75, 0.72, 0.71, 0.7],
        {"max_depth": 1, "epoch_transitions_only": True},
        trainer_max_epochs=5,
    ),
    Scenario(
        "new_optimizer_keeps_the_running_scheduler",
        three_phases(
            p1={"new_lr_scheduler": step_lr(0.7)},
            p2={"new_optimizer": {"optimizer_init": {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e-3}}}},
        ),
        THREE_PHASE_LOSSES,
    ),
    Scenario(
        "new_optimizer_after_init_pg_lrs",
        three_phases(
            p1={"new_lr_scheduler": step_lr(0.7, init_pg_lrs=[2.0e-4])},
            p2={
                "new_optimizer": {"optimizer_init": {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e-3}}},
                "new_lr_scheduler": step_lr(0.8),
            },
        ),
        THREE_PHASE_LOSSES,
    ),
    Scenario(
        "no_restore_new_optimizer_use_current_lrs",
        three_phases(
            p2={
                "new_optimizer": {"optimizer_init": {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e-3}}},
                "new_lr_scheduler": step_lr(0.5, use_current_optimizer_pg_lrs=True),
            }
        ),
        THREE_PHASE_LOSSES,
        {"restore_best": False},
    ),
    Scenario("reduce_on_plateau", three_phases(), THREE_PHASE_LOSSES, scheduler="plateau"),
    Scenario(
        "lambda_apply_to_new_groups",
        three_phases(),
        THREE_PHASE_LOSSES,
        {"apply_lambdas_new_pgs": True},
        scheduler="lambda",
    ),
    Scenario("lambda_constant_new_groups", three_phases(), THREE_PHASE_LOSSES, scheduler="lambda"),
    Scenario(
        "init_pg_lrs_fts_length",
        three_phases(
            p1={"new_lr_scheduler": step_lr(0.7, init_pg_lrs=[2.0e-4])},
            p2={"new_lr_scheduler": warm_restarts(init_pg_lrs=[1.0e-4, 2.0e-4])},
        ),
        THREE_PHASE_LOSSES,
    ),
    Scenario(
        "init_pg_lrs_fts_length_no_decay",
        three_phases(
            p1={"new_lr_scheduler": step_lr(0.7, init_pg_lrs=[2.0e-4, 2.0e-4])},
            p2={"new_lr_scheduler": warm_restarts(init_pg_lrs=[1.0e-4, 1.0e-4, 2.0e-4, 2.0e-4])},
        ),
        THREE_PHASE_LOSSES,
        no_decay=True,
    ),
    Scenario(
        "init_pg_lrs_all_groups",
        three_phases(
            p1={"new_lr_scheduler": step_lr(0.7, init_pg_lrs=[2.0e-4, 3.0e-4])},
            p2={"new_lr_scheduler": warm_restarts(init_pg_lrs=[1.0e-4, 2.0e-4, 3.0e-4])},
        ),
        THREE_PHASE_LOSSES,
    ),
    Scenario(
        "new_lr_scheduler_defaults_no_decay",
        three_phases(p1={"new_lr_scheduler": step_lr(0.7)}, p2={"new_lr_scheduler": warm_restarts()}),
        THREE_PHASE_LOSSES,
        no_decay=True,
    ),
    Scenario(
        "use_current_optimizer_pg_lrs",
        three_phases(p2={"new_lr_scheduler": step_lr(0.5, use_current_optimizer_pg_lrs=True)}),
        THREE_PHASE_LOSSES,
    ),
    Scenario(
        "new_optimizer",
        three_phases(
            p2={
                "new_optimizer": {
                    "optimizer_init": {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e-3, "momentum": 0.9}}
                },
                "new_lr_scheduler": step_lr(0.8),
            }
        ),
        THREE_PHASE_LOSSES,
    ),
    Scenario(
        "implicit_naive_reinit_lr",
        None,
        THREE_PHASE_LOSSES,
        {"max_depth": 2, "reinit_lr_cfg": step_lr(0.7)},
    ),
    Scenario(
        "implicit_naive_no_decay",
        None,
        [1.0, 0.9, 0.95, 0.8, 0.85, 0.7, 0.75, 0.72, 0.71, 0.69, 0.7],
        {"max_depth": 3},
        no_decay=True,
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_ftexp_matches_fts_epoch_by_epoch(scenario: Scenario, tmp_path):
    extra = {"implicit_mode": "naive"} if scenario.schedule is None else {}
    fts = run_fts(scenario, tmp_path / "fts")
    ours = run_ftexp(scenario, tmp_path / "ftexp", **extra)
    assert len(fts.epochs) >= 3, "the scenario must train several epochs to compare anything"
    assert differences(fts, ours) == []


DISK_RESTORE = (
    "early_stopping_restore_best",
    "best_from_an_earlier_phase",
    "reduce_on_plateau",
    "init_pg_lrs_fts_length_no_decay",
    "new_optimizer",
)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.name in DISK_RESTORE], ids=lambda s: s.name)
def test_restore_from_disk_matches_fts_too(scenario: Scenario, tmp_path):
    fts = run_fts(scenario, tmp_path / "fts")
    ours = run_ftexp(scenario, tmp_path / "ftexp", restore_best_from="disk")
    assert differences(fts, ours) == []
