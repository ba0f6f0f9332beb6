"""Recipes from the literature as schedules built from the model (``ftexp.schedule.recipes``): LP-FT, discriminative
lrs on the implicit schedule, ULMFiT's gradual unfreezing; on the tiny 2-layer BERT classifier, whose ``blocks``
phases are the classifier, the pooler, layer 1, layer 0 and the embeddings."""

from __future__ import annotations

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from ftexp import FinetuningScheduler, PhaseEarlyStopping
from ftexp.schedule import ScheduleError
from ftexp.schedule.recipes import discriminative, lp_ft, ulmfit
from tests.tiny_models import TinyTransformerClassifier, trainer

LR = 1e-3
BLOCKS = [
    "model.classifier.",
    "model.bert.pooler.",
    "model.bert.encoder.layer.1.",
    "model.bert.encoder.layer.0.",
    "model.bert.embeddings.",
]


def prefixes(schedule) -> list[set[str]]:
    """Each phase's parameters, by the block they belong to."""
    return [{next(b for b in BLOCKS if name.startswith(b)) for name in phase.params} for phase in schedule.phases]


def test_lp_ft_trains_the_head_alone_then_everything_else_at_its_lr():
    model = TinyTransformerClassifier()
    schedule = lp_ft(model, lr=2e-5)

    assert prefixes(schedule) == [{BLOCKS[0]}, set(BLOCKS[1:])]
    assert [phase.lr for phase in schedule.phases] == [None, 2e-5]
    assert all(phase.max_transition_epoch == -1 for phase in schedule.phases), "early stopping ends the probe"
    everything = [name for name, _ in model.named_parameters()]
    assert sorted(schedule.phases[0].params + schedule.phases[1].params) == sorted(everything)


def test_discriminative_lrs_shrink_by_the_factor_from_phase_to_phase():
    schedule = discriminative(TinyTransformerClassifier(), lr=LR, factor=0.5)

    assert prefixes(schedule) == [{block} for block in BLOCKS]
    assert [phase.lr for phase in schedule.phases] == [None, LR / 2, LR / 4, LR / 8, LR / 16]


def test_ulmfit_thaws_one_block_per_epoch_each_at_the_lr_above_over_2_6():
    schedule = ulmfit(TinyTransformerClassifier(), lr=LR)

    assert prefixes(schedule) == [{block} for block in BLOCKS]
    assert [phase.max_transition_epoch for phase in schedule.phases] == [1, 2, 3, 4, -1]
    assert [phase.lr for phase in schedule.phases][1:] == pytest.approx([LR / 2.6**k for k in range(1, 5)])


def test_ulmfit_two_epochs_per_phase_moves_every_transition():
    schedule = ulmfit(TinyTransformerClassifier(), lr=LR, epochs_per_phase=2)

    assert [phase.max_transition_epoch for phase in schedule.phases] == [2, 4, 6, 8, -1]


@pytest.mark.parametrize(
    ("recipe", "arguments", "key"),
    [
        (discriminative, {"lr": LR, "factor": 0}, "factor"),
        (discriminative, {"lr": LR, "factor": 1.5}, "factor"),
        (discriminative, {"lr": None}, "lr"),
        (ulmfit, {"lr": -1.0}, "lr"),
        (ulmfit, {"lr": LR, "epochs_per_phase": 0}, "epochs_per_phase"),
        (lp_ft, {"lr": "fast"}, "lr"),
    ],
)
def test_bad_recipe_arguments_are_refused_with_the_key_named(recipe, arguments, key):
    with pytest.raises(ScheduleError) as caught:
        recipe(TinyTransformerClassifier(), **arguments)

    assert caught.value.key == key and f"<recipe:{recipe.__name__}>" in str(caught.value)


class GroupLRs(Callback):
    """Each epoch's param-group lrs, read at its first batch (after that epoch's transition)."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.setdefault(trainer.current_epoch, [group["lr"] for group in trainer.optimizers[0].param_groups])


def test_ulmfit_under_the_scheduler_adds_one_block_per_epoch_with_its_discriminative_lr(tmp_path):
    torch.manual_seed(0)
    model = TinyTransformerClassifier(lr=LR)
    probe = GroupLRs()
    fts = FinetuningScheduler(ulmfit(model, lr=LR).to_dict(), epoch_transitions_only=True, restore_best=False)
    trainer(tmp_path, [fts, probe], max_epochs=6).fit(model)

    # two groups per phase (with and without weight decay), each phase's at its own lr (no LR scheduler here)
    expected = [LR / 2.6**k for k in range(5) for _ in range(2)]
    assert probe.lrs[0] == pytest.approx(expected[:2])
    assert {epoch: len(lrs) for epoch, lrs in probe.lrs.items()} == {0: 2, 1: 4, 2: 6, 3: 8, 4: 10, 5: 10}
    assert probe.lrs[5] == pytest.approx(expected)


class ScriptedValLoss(TinyTransformerClassifier):
    """``val_loss`` follows a script, one value per epoch: the test decides when the head's early stopping fires."""

    def __init__(self, val_losses: list[float]) -> None:
        super().__init__(lr=LR)
        self.val_losses = val_losses

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.val_losses[self.current_epoch])


def test_lp_ft_moves_to_fine_tuning_only_when_the_probe_s_early_stopping_fires(tmp_path):
    # the probe improves until epoch 3, then stalls: with patience 2 its early stopping fires at the end of epoch 5
    model = ScriptedValLoss([0.9, 0.8, 0.7, 0.6, 0.6, 0.6, 0.5, 0.4, 0.3])
    probe = GroupLRs()
    fts = FinetuningScheduler(lp_ft(model, lr=1e-4).to_dict(), restore_best=False)
    stopping = PhaseEarlyStopping(monitor="val_loss", patience=2)
    trainer(tmp_path, [fts, stopping, probe], max_epochs=8).fit(model)

    groups_per_epoch = [len(probe.lrs[epoch]) for epoch in sorted(probe.lrs)]
    assert groups_per_epoch == [2] * 6 + [4] * 2, "the head alone through epoch 5, everything from epoch 6"
    assert probe.lrs[6][2:] == pytest.approx([1e-4, 1e-4])
