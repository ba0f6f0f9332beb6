"""Specifications of the phase state machine on a tiny MLP: what trains, at which lr, in how many groups."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from ftexp import FinetuningScheduler, PhaseEarlyStopping
from tests.tiny_models import TinyModule, trainer

HEAD, L2, L1, L0 = "net.6", "net.4", "net.2", "net.0"


def epoch_schedule(**phase1):
    """Three phases ended by epoch: head until epoch 2, + layer 4 until epoch 4, then the rest."""
    return {
        0: {"params": [f"{HEAD}.*"], "max_transition_epoch": 2},
        1: {"params": [f"{L2}.weight", f"{L2}.bias"], "max_transition_epoch": 4, **phase1},
        2: {"params": [f"{L1}.*", f"{L0}.*"], "lr": 2e-3},
    }


class PhaseProbe(Callback):
    """Records, at the first training batch of every epoch, what the optimizer and model look like."""

    def __init__(self) -> None:
        self.epochs: dict[int, dict] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx:
            return
        groups = trainer.optimizers[0].param_groups
        names = {id(p): n for n, p in pl_module.named_parameters()}
        self.epochs[trainer.current_epoch] = {
            "trainable": sorted(n for n, p in pl_module.named_parameters() if p.requires_grad),
            "groups": [sorted(names[id(p)] for p in g["params"]) for g in groups],
            "lrs": [g["lr"] for g in groups],
            "weight_decay": [g["weight_decay"] for g in groups],
        }


def params_of(*prefixes: str) -> list[str]:
    return sorted(f"{p}.{kind}" for p in prefixes for kind in ("weight", "bias"))


def test_each_phase_trains_exactly_its_cumulative_parameters_at_the_scheduled_lrs(tmp_path):
    pl.seed_everything(0)
    probe = PhaseProbe()
    fts = FinetuningScheduler(epoch_schedule(lr=1e-3), restore_best=False)
    trainer(tmp_path, [fts, probe], max_epochs=6).fit(TinyModule(lr=1e-2))

    assert probe.epochs[0]["trainable"] == params_of(HEAD)
    assert probe.epochs[0]["lrs"] == [1e-2]
    assert probe.epochs[2]["trainable"] == params_of(HEAD, L2)
    assert probe.epochs[2]["groups"] == [params_of(HEAD), params_of(L2)]
    assert probe.epochs[2]["lrs"] == [1e-2, 1e-3]
    assert probe.epochs[4]["trainable"] == params_of(HEAD, L2, L1, L0)
    assert probe.epochs[4]["lrs"] == [1e-2, 1e-3, 2e-3]
    assert [t["depth"] for t in fts.transitions] == [1, 2]
    assert [t["epoch"] for t in fts.transitions] == [2, 4]
    assert fts.curr_depth == 2


def test_no_decay_splits_each_new_phase_into_a_decay_and_a_zero_decay_group(tmp_path):
    probe = PhaseProbe()
    module = TinyModule(lr=1e-2, no_decay=["bias"], weight_decay=0.1)
    trainer(tmp_path, [FinetuningScheduler(epoch_schedule(), restore_best=False), probe], max_epochs=5).fit(module)

    phase2 = probe.epochs[4]
    assert phase2["groups"] == [
        params_of(HEAD),
        [f"{L2}.weight"],
        [f"{L2}.bias"],
        [f"{L0}.weight", f"{L1}.weight"],
        [f"{L0}.bias", f"{L1}.bias"],
    ]
    assert phase2["weight_decay"] == [0.1, 0.1, 0.0, 0.1, 0.0]
    assert phase2["lrs"] == [1e-2, 1e-5, 1e-5, 2e-3, 2e-3], "phases without lr use base_max_lr (1e-5)"


def test_a_parameter_matching_any_one_no_decay_fragment_joins_the_zero_decay_group_its_phase_adds(tmp_path):
    """no_decay=["bias", "net.2.weight"]: net.2.weight contains only the second fragment, the biases only the first;
    one fragment is enough, so phase 2 adds [net.0.weight] with decay and the other three without."""
    probe = PhaseProbe()
    module = TinyModule(lr=1e-2, no_decay=["bias", f"{L1}.weight"], weight_decay=0.1)
    trainer(tmp_path, [FinetuningScheduler(epoch_schedule(), restore_best=False), probe], max_epochs=5).fit(module)

    phase2 = probe.epochs[4]
    assert phase2["groups"][-2:] == [[f"{L0}.weight"], [f"{L0}.bias", f"{L1}.bias", f"{L1}.weight"]]
    assert phase2["weight_decay"][-2:] == [0.1, 0.0]


def test_base_max_lr_none_uses_the_optimizers_initial_lr(tmp_path):
    probe = PhaseProbe()
    fts = FinetuningScheduler(epoch_schedule(), restore_best=False, base_max_lr=None)
    trainer(tmp_path, [fts, probe], max_epochs=3).fit(TinyModule(lr=3e-2))
    assert probe.epochs[2]["lrs"] == [3e-2, 3e-2]


def test_max_depth_stops_the_schedule_early_and_the_last_phase_runs_to_max_epochs(tmp_path):
    probe = PhaseProbe()
    fts = FinetuningScheduler(epoch_schedule(), restore_best=False, max_depth=1)
    trainer(tmp_path, [fts, probe], max_epochs=7).fit(TinyModule())
    assert fts.curr_depth == 1
    assert probe.epochs[6]["trainable"] == params_of(HEAD, L2)


def test_optimizer_holding_every_parameter_is_restricted_to_phase_zero(tmp_path):
    class AllParams(TinyModule):
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    probe = PhaseProbe()
    trainer(tmp_path, [FinetuningScheduler(epoch_schedule(), restore_best=False), probe], max_epochs=3).fit(AllParams())
    assert probe.epochs[0]["groups"] == [params_of(HEAD)]
    assert probe.epochs[2]["groups"] == [params_of(HEAD), params_of(L2)]


def test_frozen_parameters_do_not_change_and_thawed_ones_do(tmp_path):
    module = TinyModule()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    fts = FinetuningScheduler(epoch_schedule(), restore_best=False, max_depth=1)
    trainer(tmp_path, [fts], max_epochs=3).fit(module)
    after = dict(module.named_parameters())
    for name in params_of(L1, L0):
        assert torch.equal(before[name], after[name]), name
    for name in params_of(HEAD, L2):
        assert not torch.equal(before[name], after[name]), name


@pytest.mark.parametrize("mode", ["naive", "blocks"])
def test_implicit_mode_walks_the_generated_schedule(tmp_path, mode):
    fts = FinetuningScheduler(implicit_mode=mode, restore_best=False, epoch_transitions_only=True)
    run = trainer(tmp_path, [fts], max_epochs=3)
    with pytest.raises(Exception, match="max_transition_epoch"):
        run.fit(TinyModule())  # generated schedules have no epoch limits, so epoch-only mode must refuse them
    fts = FinetuningScheduler(implicit_mode=mode, restore_best=False)
    trainer(tmp_path, [fts, PhaseEarlyStopping(min_delta=1.0, patience=1)], max_epochs=20).fit(TinyModule())
    assert fts.curr_depth == fts.final_depth == len(fts.schedule) - 1
    assert len(fts.schedule) == 4, "both generators give 4 phases for 4 Linear layers (8 tensors)"
