"""BatchNorm under freezing, and every supported LR scheduler extended to or rebuilt for new groups."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from ftexp import FinetuningScheduler, PhaseEarlyStopping
from ftexp.schedule.slanted_triangular import SlantedTriangularLR
from tests.tiny_models import TinyModule, bn_convnet, trainer


class BatchNormProbe(Callback):
    def __init__(self) -> None:
        self.modes: dict[int, list[bool]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        bns = [m for m in pl_module.modules() if isinstance(m, torch.nn.BatchNorm1d)]
        self.modes.setdefault(trainer.current_epoch, [m.training for m in bns])


def test_frozen_batchnorm_stays_in_eval_mode_and_keeps_its_statistics_until_thawed(tmp_path):
    module = TinyModule(net=bn_convnet())
    first_bn, second_bn = (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d))
    stats_before = first_bn.running_mean.clone()
    schedule = {
        0: {"params": ["net.8.*"], "max_transition_epoch": 2},  # the Linear head
        1: {"params": ["net.4.*", "net.5.*"], "max_transition_epoch": 3},  # conv 2 + its BN
        2: {"params": ["net.1.*", "net.2.*"]},
    }
    probe = BatchNormProbe()
    trainer(tmp_path, [FinetuningScheduler(schedule, restore_best=False, max_depth=1), probe], max_epochs=3).fit(module)
    assert probe.modes[0] == [False, False]
    assert probe.modes[2] == [False, True], "the thawed BN trains, the frozen one stays in eval mode"
    assert torch.equal(first_bn.running_mean, stats_before)
    assert first_bn.track_running_stats and second_bn.track_running_stats


def test_frozen_bn_track_running_stats_false_switches_tracking_off_for_frozen_layers(tmp_path):
    module = TinyModule(net=bn_convnet())
    fts = FinetuningScheduler(
        {0: ["net.8.*"], 1: ["net.[0-7].*"]}, restore_best=False, frozen_bn_track_running_stats=False, max_depth=0
    )
    trainer(tmp_path, [fts], max_epochs=1).fit(module)
    assert [m.track_running_stats for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d)] == [False, False]


SCHEDULERS = {
    "LambdaLR": None,  # needs a callable: exercised through configure_optimizers below
    "MultiplicativeLR": None,
    "StepLR": {"step_size": 1, "gamma": 0.5},
    "MultiStepLR": {"milestones": [1, 2], "gamma": 0.5},
    "ExponentialLR": {"gamma": 0.5},
    "CosineAnnealingLR": {"T_max": 4, "eta_min": 1e-6},
    "CosineAnnealingWarmRestarts": {"T_0": 2, "eta_min": 1e-6},
    "ReduceLROnPlateau": {"patience": 0, "factor": 0.5},
    "ConstantLR": {"factor": 0.5, "total_iters": 2},
    "LinearLR": {"start_factor": 0.5, "total_iters": 2},
}


class LRProbe(Callback):
    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def on_train_epoch_end(self, trainer, pl_module):
        self.lrs[trainer.current_epoch] = [g["lr"] for g in trainer.optimizers[0].param_groups]


class ConfiguredScheduler(TinyModule):
    def __init__(self, name: str, init_args: dict | None) -> None:
        super().__init__(lr=1e-2)
        self.name, self.init_args = name, init_args

    def configure_optimizers(self):
        optimizer = torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=self.lr)
        cls = getattr(torch.optim.lr_scheduler, self.name)
        if self.name == "LambdaLR":
            scheduler = cls(optimizer, lambda epoch: 0.5**epoch)
        elif self.name == "MultiplicativeLR":
            scheduler = cls(optimizer, lambda epoch: 0.5)
        else:
            scheduler = cls(optimizer, **self.init_args)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}


def two_phases(**phase1) -> dict:
    return {0: {"params": ["net.6.*"], "max_transition_epoch": 1}, 1: {"params": ["net.4.*"], "lr": 1e-3, **phase1}}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_configured_scheduler_is_extended_to_the_groups_of_new_phases(tmp_path, name):
    pl.seed_everything(0)
    probe = LRProbe()
    module = ConfiguredScheduler(name, SCHEDULERS[name])
    fts = FinetuningScheduler(
        two_phases(),
        restore_best=False,
        apply_lambdas_new_pgs=name in ("LambdaLR", "MultiplicativeLR"),
        epoch_transitions_only=True,
    )
    trainer(tmp_path, [fts, probe], max_epochs=5).fit(module)
    assert all(len(lrs) == 2 for epoch, lrs in probe.lrs.items() if epoch >= 1)
    new_group = [probe.lrs[e][1] for e in range(1, 5)]
    if name in ("ConstantLR", "LinearLR"):
        assert new_group[-1] > 0
    elif name == "ReduceLROnPlateau":
        assert new_group[-1] <= 1e-3
    else:
        assert new_group[-1] < 1e-3, f"{name} must schedule the phase-1 group too, got {new_group}"


class EpochStartLRProbe(Callback):
    """The lrs each epoch trains with (read at its first batch, after any transition)."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.setdefault(trainer.current_epoch, [g["lr"] for g in trainer.optimizers[0].param_groups])


@pytest.mark.parametrize(
    ("name", "apply", "phase1_lrs"),
    [
        # LambdaLR(0.5**epoch): the group joins at epoch 1 at lr 1e-3 (x 0.5**1 with apply), then base x 0.5**epoch
        ("LambdaLR", False, [1e-3, 2.5e-4, 1.25e-4]),
        ("LambdaLR", True, [5e-4, 2.5e-4, 1.25e-4]),
        # MultiplicativeLR(0.5): each step halves the current lr, from the start the group joined with
        ("MultiplicativeLR", False, [1e-3, 5e-4, 2.5e-4]),
        ("MultiplicativeLR", True, [5e-4, 2.5e-4, 1.25e-4]),
    ],
)
def test_new_groups_follow_the_last_lambda_and_apply_lambdas_scales_their_first_lr(tmp_path, name, apply, phase1_lrs):
    """As in FTS: a group added under a lambda scheduler follows its last lambda from the next step on either way;
    apply_lambdas_new_pgs decides whether its first epoch's lr is the phase lr or the phase lr times the lambda."""
    probe = EpochStartLRProbe()
    fts = FinetuningScheduler(
        two_phases(), restore_best=False, epoch_transitions_only=True, apply_lambdas_new_pgs=apply
    )
    trainer(tmp_path, [fts, probe], max_epochs=4).fit(ConfiguredScheduler(name, None))
    assert [probe.lrs[e][1] for e in (1, 2, 3)] == pytest.approx(phase1_lrs, rel=1e-12)


def test_without_apply_lambdas_a_notice_says_how_to_scale_new_groups(tmp_path):
    fts = FinetuningScheduler(two_phases(), restore_best=False, epoch_transitions_only=True)
    with pytest.warns(UserWarning, match="apply_lambdas_new_pgs"):
        trainer(tmp_path, [fts], max_epochs=2).fit(ConfiguredScheduler("LambdaLR", None))


@pytest.mark.parametrize("name", [n for n, args in SCHEDULERS.items() if args is not None])
def test_new_lr_scheduler_reinitializes_every_group_at_its_init_pg_lrs(tmp_path, name):
    probe = LRProbe()
    pl_lrs_cfg = {"interval": "epoch", "monitor": "val_loss"} if name == "ReduceLROnPlateau" else {"interval": "epoch"}
    reinit = {
        "lr_scheduler_init": {"class_path": f"torch.optim.lr_scheduler.{name}", "init_args": SCHEDULERS[name]},
        "pl_lrs_cfg": pl_lrs_cfg,
        "init_pg_lrs": [4e-3, 2e-3],
    }
    fts = FinetuningScheduler(two_phases(new_lr_scheduler=reinit), restore_best=False, epoch_transitions_only=True)
    run = trainer(tmp_path, [fts, probe], max_epochs=2)
    run.fit(TinyModule(lr=1e-2, scheduler="step"))
    scheduler = run.lr_scheduler_configs[0].scheduler
    assert type(scheduler).__name__ == name
    if hasattr(scheduler, "base_lrs"):
        assert scheduler.base_lrs == [4e-3, 2e-3]


def test_implicit_reinit_lr_cfg_rebuilds_the_scheduler_at_every_transition(tmp_path):
    reinit = {"lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1}}}
    fts = FinetuningScheduler(restore_best=False, reinit_lr_cfg=reinit, max_phases=3)
    stopper_free = trainer(tmp_path, [fts], max_epochs=12)
    stopper_free.fit(TinyModule(lr=1e-2, scheduler="lambda", val_targets_shift=5.0))
    assert fts.curr_depth == 2
    assert type(stopper_free.lr_scheduler_configs[0].scheduler).__name__ == "StepLR"


def test_new_optimizer_replaces_the_optimizer_over_the_same_groups(tmp_path):
    phase1 = {
        "new_optimizer": {"optimizer_init": {"class_path": "torch.optim.SGD", "init_args": {"momentum": 0.9}}},
        "new_lr_scheduler": {
            "lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1}}
        },
    }
    fts = FinetuningScheduler(two_phases(**phase1), restore_best=False, epoch_transitions_only=True)
    run = trainer(tmp_path, [fts], max_epochs=3)
    run.fit(TinyModule(lr=1e-2, scheduler="step"))
    optimizer = run.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    assert len(optimizer.param_groups) == 2
    assert run.lr_scheduler_configs[0].scheduler.optimizer is optimizer


@pytest.mark.parametrize(("use_current", "phase0_lr"), [(False, 1e-2), (True, 5e-3)])
def test_reinitialized_scheduler_restarts_from_initial_or_current_lrs(tmp_path, use_current, phase0_lr):
    """Phase 0 runs one epoch under StepLR(gamma=0.5): its group is at 5e-3 when phase 1 begins. By default a new
    scheduler restarts every group from its initial lr; use_current_optimizer_pg_lrs keeps the current one. Either
    way the scheduler's base lrs are the groups' initial lrs (torch's rule, and FTS's)."""
    reinit = {
        "lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.ExponentialLR", "init_args": {"gamma": 0.9}},
        "use_current_optimizer_pg_lrs": use_current,
    }
    probe = EpochStartLRProbe()
    fts = FinetuningScheduler(two_phases(new_lr_scheduler=reinit), restore_best=False, epoch_transitions_only=True)
    run = trainer(tmp_path, [fts, probe], max_epochs=2)
    run.fit(TinyModule(lr=1e-2, scheduler="step"))
    assert probe.lrs[1] == pytest.approx([phase0_lr, 1e-3])
    assert run.lr_scheduler_configs[0].scheduler.base_lrs == pytest.approx([1e-2, 1e-3])


def test_implicit_reinit_optim_cfg_builds_a_new_optimizer_at_every_transition(tmp_path):
    optimizers = []

    class RecordOptimizer(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            optimizers.append(trainer.optimizers[0])

    fts = FinetuningScheduler(
        restore_best=False,
        max_phases=3,
        reinit_optim_cfg={"optimizer_init": {"class_path": "torch.optim.SGD", "init_args": {"momentum": 0.5}}},
    )
    stopper = PhaseEarlyStopping(min_delta=1.0, patience=1)
    trainer(tmp_path, [fts, RecordOptimizer(), stopper], max_epochs=8).fit(TinyModule())
    assert fts.curr_depth == 2
    assert isinstance(optimizers[0], torch.optim.AdamW)
    distinct = {id(o) for o in optimizers}
    assert len(distinct) == 3, "one optimizer per phase"
    assert all(isinstance(o, torch.optim.SGD) and o.defaults["momentum"] == 0.5 for o in optimizers[-1:])


class SlantedTriangular(TinyModule):
    def configure_optimizers(self):
        optimizer = torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=1e-2)
        return {"optimizer": optimizer, "lr_scheduler": SlantedTriangularLR(optimizer, total_steps=10, cut_frac=0.2)}


def test_slanted_triangular_lr_rises_to_the_peak_and_a_group_thawed_later_follows_it_from_its_own_lr(tmp_path):
    probe = EpochStartLRProbe()
    fts = FinetuningScheduler(two_phases(), restore_best=False, epoch_transitions_only=True)
    trainer(tmp_path, [fts, probe], max_epochs=6).fit(SlantedTriangular())

    # stepped once per epoch: warm-up over 2 steps from 1e-2/32 to the peak at epoch 2, then down by 1/8 of the
    # peak-to-floor span per epoch; the phase-1 group (lr 1e-3 from epoch 1) follows the same factor from there on
    factor = {epoch: (1 + p * 31) / 32 for epoch, p in {0: 0, 1: 0.5, 2: 1, 3: 7 / 8, 4: 6 / 8, 5: 5 / 8}.items()}
    assert probe.lrs[0] == pytest.approx([1e-2 * factor[0]])
    assert [lrs[0] for epoch, lrs in sorted(probe.lrs.items())] == pytest.approx([1e-2 * factor[e] for e in range(6)])
    assert [probe.lrs[epoch][1] for epoch in range(2, 6)] == pytest.approx([1e-3 * factor[e] for e in range(2, 6)])
