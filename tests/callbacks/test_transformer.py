"""A 2-layer transformer from a transformers config, fine-tuned by the generated (blocks) schedule."""

from __future__ import annotations

import pytorch_lightning as pl

from ftexp import FinetuningScheduler, generate_schedule
from tests.callbacks.test_phases import PhaseProbe
from tests.tiny_models import TinyTransformerClassifier, trainer


def units_trainable(probe: PhaseProbe, epoch: int) -> list[str]:
    """The model's units (classifier, pooler, layer.N, embeddings) with trainable parameters at ``epoch``."""
    units = set()
    for name in probe.epochs[epoch]["trainable"]:
        parts = name.split(".")
        if parts[1] == "classifier":
            units.add("classifier")
        elif parts[3] == "layer":
            units.add(f"layer.{parts[4]}")
        else:
            units.add(parts[2])  # pooler, embeddings
    return sorted(units)


def test_blocks_schedule_thaws_head_pooler_layers_then_embeddings_with_no_decay_groups(tmp_path):
    pl.seed_everything(0)
    module = TinyTransformerClassifier()
    probe = PhaseProbe()
    # the generated schedule, given one epoch per phase so the test does not depend on early stopping
    schedule = {
        phase.index: {"params": list(phase.params), "max_transition_epoch": phase.index + 1}
        for phase in generate_schedule(module).phases
    }
    fts = FinetuningScheduler(schedule, epoch_transitions_only=True)
    trainer(tmp_path, [fts, probe], max_epochs=5).fit(module)

    assert units_trainable(probe, 0) == ["classifier"]
    assert units_trainable(probe, 1) == ["classifier", "pooler"]
    assert units_trainable(probe, 2) == ["classifier", "layer.1", "pooler"]
    assert units_trainable(probe, 3) == ["classifier", "layer.0", "layer.1", "pooler"]
    assert units_trainable(probe, 4) == ["classifier", "embeddings", "layer.0", "layer.1", "pooler"]
    assert all(p.requires_grad for p in module.parameters())
    # each phase after 0 adds a decay group and a no-decay group at base_max_lr
    assert [len(probe.epochs[e]["groups"]) for e in range(5)] == [2, 4, 6, 8, 10]
    assert probe.epochs[4]["weight_decay"] == [0.01, 0.0] * 5
    assert probe.epochs[4]["lrs"] == [1e-3, 1e-3] + [1e-5] * 8
