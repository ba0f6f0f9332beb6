"""Restore-best and resume: the state after a transition or a resume equals what an uninterrupted run holds."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from packaging.version import Version
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loops.fit_loop import _FitLoop

from ftexp import DEPTH_METRIC, FinetuningScheduler, PhaseCheckpoint, ScheduleError
from tests.callbacks.test_phases import epoch_schedule
from tests.tiny_models import TinyModule, bn_convnet, trainer


class RestoreProbe(Callback):
    """Placed after the scheduler: at each transition epoch, compare the live state with the best checkpoint."""

    def __init__(self, fts: FinetuningScheduler) -> None:
        self.fts = fts
        self.checks: list[dict] = []

    def on_train_epoch_start(self, trainer, pl_module):
        if not self.fts.transitions or self.fts.transitions[-1]["epoch"] != trainer.current_epoch:
            return
        best = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=False)
        live = pl_module.state_dict()
        saved_opt = best["optimizer_states"][0]
        live_opt = trainer.optimizers[0].state_dict()
        n_saved = len(saved_opt["param_groups"])
        self.checks.append(
            {
                "weights_equal": all(torch.equal(live[k], v) for k, v in best["state_dict"].items()),
                "restored_lrs_equal": [g["lr"] for g in live_opt["param_groups"][:n_saved]]
                == [g["lr"] for g in saved_opt["param_groups"]],
                "optimizer_state_equal": all(
                    torch.equal(live_opt["state"][i][key], value)
                    for i, state in saved_opt["state"].items()
                    for key, value in state.items()
                ),
            }
        )


@pytest.mark.parametrize("source", ["memory", "disk"])
def test_restore_best_rolls_weights_optimizer_and_lrs_back_to_the_best_checkpoint(tmp_path, source):
    pl.seed_everything(0)
    # A shifted validation target makes later epochs worse than earlier ones, so the best is not the latest.
    module = TinyModule(lr=5e-2, scheduler="step", val_targets_shift=0.3)
    fts = FinetuningScheduler(epoch_schedule(), restore_best_from=source)
    probe = RestoreProbe(fts)
    trainer(tmp_path, [fts, probe, PhaseCheckpoint(dirpath=tmp_path / "ckpt")], max_epochs=6).fit(module)
    assert len(probe.checks) == 2
    for check in probe.checks:
        assert check == {"weights_equal": True, "restored_lrs_equal": True, "optimizer_state_equal": True}


def test_memory_and_disk_restores_give_bitwise_identical_runs(tmp_path):
    finals = {}
    for source in ("memory", "disk"):
        pl.seed_everything(0)
        module = TinyModule(lr=5e-2, scheduler="step", val_targets_shift=0.3)
        fts = FinetuningScheduler(epoch_schedule(), restore_best_from=source)
        trainer(tmp_path / source, [fts], max_epochs=7).fit(module)
        finals[source] = module.state_dict()
    assert all(torch.equal(finals["memory"][k], finals["disk"][k]) for k in finals["memory"])


class ScriptedValidation(TinyModule):
    """``val_loss`` follows a script, one value per epoch, so the test decides which epoch is the best."""

    def __init__(self, val_losses: list[float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.val_losses = val_losses

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.val_losses[self.current_epoch])


def training_state(module: pl.LightningModule, optimizer: torch.optim.Optimizer) -> dict:
    """What a restore must roll back, copied: the ``state_dict`` (weights and BatchNorm buffers) and each parameter's
    optimizer state by name (AdamW: step, exp_avg, exp_avg_sq)."""
    names = {id(p): n for n, p in module.named_parameters()}
    return {
        "state_dict": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "optimizer": {names[id(p)]: {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()},
    }


class EpochStateProbe(Callback):
    """Placed after the scheduler: the training state at the end of every epoch and right after each transition."""

    def __init__(self, fts: FinetuningScheduler) -> None:
        self.fts = fts
        self.at_epoch_end: dict[int, dict] = {}
        self.after_transition: dict[int, dict] = {}

    def on_train_epoch_end(self, trainer, pl_module):
        self.at_epoch_end[trainer.current_epoch] = training_state(pl_module, trainer.optimizers[0])

    def on_train_epoch_start(self, trainer, pl_module):
        if self.fts.transitions and self.fts.transitions[-1]["epoch"] == trainer.current_epoch:
            self.after_transition[trainer.current_epoch] = training_state(pl_module, trainer.optimizers[0])


# Phase 0 trains the head and the second conv block, its BatchNorm included, until epoch 3; epoch 1 is the best, so
# the transition at epoch 3 rolls back two epochs of weights, running statistics and Adam moments.
BN_SCHEDULE = {
    0: {"params": ["net.8.*", "net.5.*", "net.4.*"], "max_transition_epoch": 3},
    1: {"params": ["net.2.*", "net.1.*"]},
}
BN_VAL_LOSSES = [0.9, 0.5, 0.7, 0.8]
BEST_EPOCH, LAST_EPOCH_BEFORE, TRANSITION_EPOCH = 1, 2, 3


@pytest.fixture(scope="module")
def bn_restores(tmp_path_factory) -> dict[str, tuple[FinetuningScheduler, EpochStateProbe]]:
    """The same BatchNorm run restoring its best from memory and from disk."""
    runs = {}
    for source in ("memory", "disk"):
        pl.seed_everything(0)
        module = ScriptedValidation(BN_VAL_LOSSES, net=bn_convnet(), lr=5e-2)
        fts = FinetuningScheduler(BN_SCHEDULE, restore_best_from=source)
        probe = EpochStateProbe(fts)
        trainer(tmp_path_factory.mktemp(source), [fts, probe], max_epochs=TRANSITION_EPOCH + 1).fit(module)
        runs[source] = fts, probe
    return runs


@pytest.mark.parametrize("source", ["memory", "disk"])
def test_the_batchnorm_run_transitions_once_restoring_the_best_of_phase_zero(bn_restores, source):
    fts, _ = bn_restores[source]
    assert [(t["epoch"], t["restored_from_depth"]) for t in fts.transitions] == [(TRANSITION_EPOCH, 0)]


def test_a_memory_restore_rolls_batchnorm_buffers_back_exactly_like_a_disk_restore(bn_restores):
    best = bn_restores["disk"][1].at_epoch_end[BEST_EPOCH]["state_dict"]
    latest = bn_restores["disk"][1].at_epoch_end[LAST_EPOCH_BEFORE]["state_dict"]
    moved = [k for k in best if not torch.equal(best[k], latest[k])]
    buffers = ["net.5.running_mean", "net.5.running_var", "net.5.num_batches_tracked"]
    assert set(buffers) <= set(moved), "the thawed BatchNorm's buffers changed after the best epoch"

    memory = bn_restores["memory"][1].after_transition[TRANSITION_EPOCH]["state_dict"]
    disk = bn_restores["disk"][1].after_transition[TRANSITION_EPOCH]["state_dict"]
    assert memory.keys() == disk.keys() == best.keys()
    assert [k for k in best if not torch.equal(memory[k], disk[k])] == []
    assert [k for k in best if not torch.equal(disk[k], best[k])] == []
    assert int(memory["net.5.num_batches_tracked"]) == int(best["net.5.num_batches_tracked"]) == 8, "2 epochs x 4"


@pytest.mark.parametrize("source", ["memory", "disk"])
def test_restoring_the_best_restores_the_optimizer_moments_it_had_then(bn_restores, source):
    _, probe = bn_restores[source]
    best = probe.at_epoch_end[BEST_EPOCH]["optimizer"]
    latest = probe.at_epoch_end[LAST_EPOCH_BEFORE]["optimizer"]
    restored = probe.after_transition[TRANSITION_EPOCH]["optimizer"]
    phase0 = ["net.4.bias", "net.4.weight", "net.5.bias", "net.5.weight", "net.8.bias", "net.8.weight"]
    assert sorted(best) == phase0
    assert all(not torch.equal(best[n]["exp_avg"], latest[n]["exp_avg"]) for n in phase0), "moments moved on"

    assert sorted(restored) == phase0, "phase 1's parameters have no optimizer state before their first step"
    for name in phase0:
        assert sorted(restored[name]) == ["exp_avg", "exp_avg_sq", "step"]
        for key, value in best[name].items():
            assert torch.equal(restored[name][key], value), (name, key)


def _run(tmp_path: Path, max_epochs: int, ckpt_path=None, **fts_kwargs):
    pl.seed_everything(0)
    module = TinyModule(lr=5e-2, scheduler="step", no_decay=["bias"])
    fts = FinetuningScheduler(epoch_schedule(lr=1e-3), **fts_kwargs)
    best = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss")
    latest = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="latest", save_last=True)  # every epoch
    run = trainer(tmp_path, [fts, best, latest], max_epochs=max_epochs)
    run.fit(module, ckpt_path=ckpt_path)
    return module, fts, run


def test_resumed_run_ends_in_the_same_state_as_an_uninterrupted_one(tmp_path):
    full_module, full_fts, full_run = _run(tmp_path / "full", max_epochs=7)
    _run(tmp_path / "split", max_epochs=3)  # stops in phase 1
    last = tmp_path / "split" / "ckpt" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    assert (saved["epoch"], saved["callbacks"][FinetuningScheduler.__qualname__]["curr_depth"]) == (2, 1)
    resumed_module, resumed_fts, resumed_run = _run(tmp_path / "split", max_epochs=7, ckpt_path=last)

    assert resumed_fts.curr_depth == full_fts.curr_depth == 2
    full_groups = full_run.optimizers[0].param_groups
    resumed_groups = resumed_run.optimizers[0].param_groups
    assert [len(g["params"]) for g in resumed_groups] == [len(g["params"]) for g in full_groups]
    assert [g["lr"] for g in resumed_groups] == pytest.approx([g["lr"] for g in full_groups])
    full_state, resumed_state = full_module.state_dict(), resumed_module.state_dict()
    for name in full_state:
        torch.testing.assert_close(resumed_state[name], full_state[name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.skipif(
    Version(pl.__version__) < Version("2.5"),
    reason="pytorch-lightning < 2.5 calls on_train_epoch_start on every resume",
)
def test_the_lightning_internals_resumes_inside_epoch_reads_still_exist():
    """resumes_inside_epoch reads FitLoop.restarted_mid_epoch and restarted_on_epoch_end (checked against
    pytorch-lightning 2.4.0, 2.5.0, 2.5.6 and 2.6.6); if Lightning renames them, a resumed epoch would silently miss
    its setup."""
    for stage in ("restarted_mid_epoch", "restarted_on_epoch_end"):
        assert isinstance(getattr(_FitLoop, stage, None), property), stage


def test_resume_without_the_best_checkpoint_fails_before_training_unless_new_incarnation(tmp_path):
    _run(tmp_path, max_epochs=3)
    last = tmp_path / "ckpt" / "last.ckpt"
    for ckpt in (tmp_path / "ckpt").glob("epoch=*.ckpt"):  # the best checkpoints are gone
        ckpt.unlink()
    with pytest.raises(ScheduleError, match="new_incarnation_mode=True"):
        _run(tmp_path, max_epochs=6, ckpt_path=last)
    assert last.is_file(), "the failed resume must not remove the user's checkpoint"

    _, fts, _ = _run(tmp_path, max_epochs=6, ckpt_path=last, new_incarnation_mode=True)
    assert fts.curr_depth == 2
    assert [t["depth"] for t in fts.transitions] == [1, 2]  # the first attempt's transition is kept
    assert fts.transitions[-1]["restored_from_depth"] == 1


def test_checkpoints_carry_the_depth_and_the_depth_is_logged_every_epoch(tmp_path):
    module = TinyModule()
    fts = FinetuningScheduler(epoch_schedule(), restore_best=False)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    logger = CSVLogger(tmp_path, name="logs")
    trainer(tmp_path, [fts, checkpoint], max_epochs=5, logger=logger).fit(module)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert saved["callbacks"][fts.state_key]["curr_depth"] == 2
    metrics = (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()
    column = metrics[0].split(",").index(DEPTH_METRIC)
    depths = [float(row.split(",")[column]) for row in metrics[1:] if row.split(",")[column]]
    assert depths == [0.0, 0.0, 1.0, 1.0, 2.0]


def test_resolved_schedule_is_written_to_the_log_dir_without_touching_the_users_file(tmp_path):
    user_file = tmp_path / "TinyModule_ft_schedule.yaml"
    user_file.write_text("0:\n  params: ['net.6.*']\n1:\n  params: ['net.[024].*']\n")
    original = user_file.read_text()
    fts = FinetuningScheduler(user_file, restore_best=False, log_dir=tmp_path)
    trainer(tmp_path, [fts], max_epochs=1).fit(TinyModule())
    assert user_file.read_text() == original
    written = fts.schedule_path.read_text()
    assert fts.schedule_path.name == "TinyModule_ft_schedule_resolved.yaml"
    assert "net.4.weight" in written and "net.2.bias" in written and "lr: 1.0e-05" in written


def test_gen_ft_sched_only_writes_the_schedule_and_trains_nothing(tmp_path):
    module = TinyModule()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    fts = FinetuningScheduler(gen_ft_sched_only=True)
    run = trainer(tmp_path, [fts], max_epochs=3)
    run.fit(module)
    assert run.global_step == 0
    assert fts.schedule_path.is_file() and fts.schedule_path.parent == Path(run.log_dir or tmp_path)
    assert all(torch.equal(before[n], p) for n, p in module.named_parameters())
