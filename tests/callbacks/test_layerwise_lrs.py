"""Specifications of per-group lrs inside a phase (``lr_decay``) in training: after each phase exactly these
optimizer groups exist, at exactly these lrs, under the module's LR scheduler; a resumed run has the same groups;
the schedule a run saves trains the same groups again. The model is a 2-layer BERT classifier whose blocks are the
classifier, the pooler, layer 1, layer 0 and the embeddings, and whose ``no_decay`` list splits every block in two
groups (weight decay 0.01, then 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from torch.optim import lr_scheduler as lrs

from ftexp import FinetuningScheduler, ResumableRandomState, SlantedTriangularLR, presets
from ftexp.schedule import split_no_decay
from tests.tiny_models import TinyTransformerClassifier, trainer

HEAD = "model.classifier"
POOLER = "model.bert.pooler"
LAYER1 = "model.bert.encoder.layer.1"
LAYER0 = "model.bert.encoder.layer.0"
EMBEDDINGS = "model.bert.embeddings"
BLOCKS = (HEAD, POOLER, LAYER1, LAYER0, EMBEDDINGS)
STEPS_PER_EPOCH = 4  # 32 examples in batches of 8
NO_DECAY = TinyTransformerClassifier.no_decay


class ScheduledTinyTransformer(TinyTransformerClassifier):
    """The tiny BERT classifier with one of three LR schedulers built in ``configure_optimizers``."""

    def __init__(self, lr: float = 1e-3, scheduler: str | None = None) -> None:
        super().__init__(lr=lr)
        self.scheduler_kind = scheduler

    def configure_optimizers(self):
        optimizer = super().configure_optimizers()
        if self.scheduler_kind is None:
            return optimizer
        built, interval = {
            "lambda": (lambda: lrs.LambdaLR(optimizer, lambda epoch: 0.5**epoch), "epoch"),
            "step": (lambda: lrs.StepLR(optimizer, step_size=1, gamma=0.5), "epoch"),
            "slanted": (lambda: SlantedTriangularLR(optimizer, total_steps=12, cut_frac=0.25, ratio=4.0), "step"),
        }[self.scheduler_kind]
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": built(), "interval": interval}}


class GroupProbe(Callback):
    """Placed after the scheduler: at every epoch start, each optimizer group's parameter names, lr and weight
    decay, and the base lrs of the LR scheduler."""

    def __init__(self) -> None:
        self.epochs: dict[int, dict] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        names = {id(p): n for n, p in pl_module.named_parameters()}
        groups = trainer.optimizers[0].param_groups
        configs = trainer.lr_scheduler_configs
        self.epochs[trainer.current_epoch] = {
            "groups": [[names[id(p)] for p in group["params"]] for group in groups],
            "lrs": [group["lr"] for group in groups],
            "weight_decay": [group["weight_decay"] for group in groups],
            "base_lrs": list(configs[0].scheduler.base_lrs) if configs else None,
        }


def block_groups(model, *blocks: str) -> list[list[str]]:
    """The optimizer groups of ``blocks`` in order: each block's decayed parameters, then its no_decay ones."""
    names = [name for name, _ in model.named_parameters()]
    return [
        group for block in blocks for group in split_no_decay([n for n in names if n.startswith(block + ".")], NO_DECAY)
    ]


def twice(values: list[float]) -> list[float]:
    """Each block's lr for its two groups (decayed, no_decay)."""
    return [value for value in values for _ in range(2)]


def fit(tmp_path: Path, model, schedule, max_epochs: int, **fts_kwargs) -> tuple[FinetuningScheduler, GroupProbe]:
    fts = FinetuningScheduler(schedule, log_dir=tmp_path, **fts_kwargs)
    probe = GroupProbe()
    trainer(tmp_path, [fts, probe], max_epochs=max_epochs).fit(model)
    return fts, probe


HEAD_THEN_DECAYED_BACKBONE = {
    0: {"params": [f"{HEAD}.*"], "max_transition_epoch": 1},
    1: {"params": ["model.bert.*"], "lr": 1e-3, "lr_decay": 0.5},
}


# ------------------------------------------------------------------ a later phase with lr_decay
def test_after_the_transition_each_block_of_the_phase_trains_in_its_own_groups_at_lr_times_decay_to_the_k(tmp_path):
    pl.seed_everything(0)
    model = ScheduledTinyTransformer(lr=2e-3, scheduler="step")
    _, probe = fit(tmp_path, model, HEAD_THEN_DECAYED_BACKBONE, 3, epoch_transitions_only=True, restore_best=False)

    assert probe.epochs[0]["groups"] == block_groups(model, HEAD)
    assert probe.epochs[0]["lrs"] == [2e-3, 2e-3]
    assert probe.epochs[1]["groups"] == block_groups(model, *BLOCKS), "2 of phase 0, then 2 per block: 10"
    assert probe.epochs[1]["weight_decay"] == [0.01, 0.0] * 5
    assert probe.epochs[1]["lrs"] == twice([1e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4]), "the head after one StepLR step"
    assert probe.epochs[1]["base_lrs"] == twice([2e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4])
    assert probe.epochs[2]["lrs"] == twice([5e-4, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5]), "every group steps"


def test_a_new_scheduler_in_the_decayed_phase_starts_earlier_groups_at_init_pg_lrs_and_its_blocks_at_theirs(tmp_path):
    pl.seed_everything(0)
    model = ScheduledTinyTransformer(lr=2e-3)
    new_scheduler = {
        "lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1}},
        "init_pg_lrs": [1e-4, 1e-4],  # FTS's form: one lr per group of the earlier phases
    }
    schedule = {
        0: HEAD_THEN_DECAYED_BACKBONE[0],
        1: {**HEAD_THEN_DECAYED_BACKBONE[1], "new_lr_scheduler": new_scheduler},
    }
    _, probe = fit(tmp_path, model, schedule, 2, epoch_transitions_only=True, restore_best=False)

    assert probe.epochs[1]["lrs"] == twice([1e-4, 1e-3, 5e-4, 2.5e-4, 1.25e-4])


# ------------------------------------------------------------------ phase 0 with lr_decay: the llrd preset
def expected_lrs(scheduler: str, epoch: int) -> list[float]:
    """Each group's lr at the start of ``epoch``: its block's base lr (1e-3 * 0.5**k) times the scheduler's
    factor then, as if configure_optimizers had built the groups itself."""
    if scheduler == "slanted":
        factor = SlantedTriangularLR(torch.optim.SGD([torch.zeros(1)], lr=1.0), 12, 0.25, 4.0).factor
        scale = factor(epoch * STEPS_PER_EPOCH)
    else:
        scale = 0.5**epoch
    return twice([1e-3 * 0.5**k * scale for k in range(5)])


@pytest.mark.parametrize("scheduler", ["lambda", "step", "slanted"])
def test_llrd_trains_every_block_from_the_first_step_at_its_decayed_lr_under_the_module_s_scheduler(
    tmp_path, scheduler
):
    pl.seed_everything(0)
    model = ScheduledTinyTransformer(lr=1e-3, scheduler=scheduler)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _, probe = fit(tmp_path, model, presets.llrd(model, decay=0.5).to_dict(), 3, restore_best=False)

    for epoch in range(3):
        assert probe.epochs[epoch]["groups"] == block_groups(model, *BLOCKS), epoch
        assert probe.epochs[epoch]["base_lrs"] == twice([1e-3 * 0.5**k for k in range(5)]), epoch
        assert probe.epochs[epoch]["lrs"] == pytest.approx(expected_lrs(scheduler, epoch), rel=1e-12), epoch
    assert probe.epochs[0]["weight_decay"] == [0.01, 0.0] * 5
    assert [name for name, p in model.named_parameters() if torch.equal(before[name], p)] == [], "all trained"


def test_the_saved_schedule_shows_every_group_s_lr_and_trains_the_same_groups_again(tmp_path):
    pl.seed_everything(0)
    first = ScheduledTinyTransformer(lr=1e-3)
    fts, probe = fit(tmp_path / "first", first, presets.llrd(first, decay=0.5).to_dict(), 1, restore_best=False)
    saved = yaml.safe_load(fts.schedule_path.read_text())
    assert (saved[0]["lr"], saved[0]["lr_decay"]) == (1e-3, 0.5)
    assert [(group["name"], group["lr"]) for group in saved[0]["groups"]] == [
        (block, 1e-3 * 0.5**k) for k, block in enumerate(BLOCKS)
    ]

    again = ScheduledTinyTransformer(lr=4e-3)  # another optimizer lr: the saved groups keep the lrs that ran
    _, replayed = fit(tmp_path / "again", again, fts.schedule_path, 1, restore_best=False)
    assert replayed.epochs[0]["groups"] == probe.epochs[0]["groups"]
    assert replayed.epochs[0]["lrs"] == probe.epochs[0]["lrs"]


# ------------------------------------------------------------------ resume
DECAYED_PHASES = {
    0: {"params": [f"{HEAD}.*", f"{POOLER}.*"], "lr_decay": 0.5, "max_transition_epoch": 1},
    1: {"params": ["model.bert.encoder.*", f"{EMBEDDINGS}.*"], "lr": 1e-3, "lr_decay": 0.5},
}


def _run(tmp_path: Path, max_epochs: int, ckpt_path: Path | None = None):
    pl.seed_everything(0)
    model = ScheduledTinyTransformer(lr=2e-3, scheduler="step")
    fts = FinetuningScheduler(DECAYED_PHASES, log_dir=tmp_path)
    best = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss")
    latest = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="latest", save_last=True)
    # the random state travels in the checkpoint: BERT's dropout masks after the resume are the uninterrupted run's
    run = trainer(tmp_path, [fts, best, latest, ResumableRandomState()], max_epochs=max_epochs)
    run.fit(model, ckpt_path=ckpt_path)
    return model, fts, run


def test_a_resumed_run_has_the_same_groups_lrs_and_weights_as_an_uninterrupted_one(tmp_path):
    full_model, full_fts, full_run = _run(tmp_path / "full", max_epochs=3)
    _run(tmp_path / "split", max_epochs=2)  # stops in phase 1
    last = tmp_path / "split" / "ckpt" / "last.ckpt"
    resumed_model, resumed_fts, resumed_run = _run(tmp_path / "split", max_epochs=3, ckpt_path=last)

    assert resumed_fts.curr_depth == full_fts.curr_depth == 1
    names = {id(p): n for n, p in full_model.named_parameters()}
    full_groups = [[names[id(p)] for p in g["params"]] for g in full_run.optimizers[0].param_groups]
    assert full_groups == block_groups(full_model, *BLOCKS), "phase 0: head and pooler; phase 1: the other blocks"
    names = {id(p): n for n, p in resumed_model.named_parameters()}
    assert [[names[id(p)] for p in g["params"]] for g in resumed_run.optimizers[0].param_groups] == full_groups
    assert [g["lr"] for g in resumed_run.optimizers[0].param_groups] == [
        g["lr"] for g in full_run.optimizers[0].param_groups
    ]
    full_scheduler, resumed_scheduler = (run.lr_scheduler_configs[0].scheduler for run in (full_run, resumed_run))
    assert resumed_scheduler.base_lrs == full_scheduler.base_lrs == twice([2e-3, 1e-3, 1e-3, 5e-4, 2.5e-4])
    full_state, resumed_state = full_model.state_dict(), resumed_model.state_dict()
    for name in full_state:
        torch.testing.assert_close(resumed_state[name], full_state[name], rtol=0, atol=1e-6, msg=name)
