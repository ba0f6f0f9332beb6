"""The example schedules printed in the seeds (FTS's own documentation), used verbatim.

``seed_schedules/`` holds them as printed: the boring model's 4- and 3-phase lists (FTS's older layout) and the
explicit LR-reinitialization example for deberta-v3-base, whose ``init_pg_lrs`` lists count the groups of earlier
phases and whose phase 2 selects layers with the regex ``layer.{0,11}.(output|attention|intermediate).*``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from pytorch_lightning import Callback
from torch import nn

from ftexp import FinetuningScheduler, PhaseEarlyStopping
from ftexp.schedule import check_phase_directives, load_schedule, resolve_schedule
from tests.fts_parity.harness import NO_DECAY, Scenario, differences, run_ftexp, run_fts
from tests.tiny_models import TinyModule, deberta_v3_base_config, trainer

SEEDS = Path(__file__).parent / "seed_schedules"
REINIT_EXAMPLE = SEEDS / "explicit_reinit_lr.yaml"


class BoringModule(TinyModule):
    """FTS's boring model layout: ``layer`` holds four Linear layers, ``layer.0`` .. ``layer.3``."""

    def __init__(self) -> None:
        super().__init__()
        del self.net
        self.layer = nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class ThawedLayersProbe(Callback):
    def __init__(self) -> None:
        self.by_epoch: dict[int, set[str]] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        thawed = {n.rsplit(".", 1)[0] for n, p in pl_module.named_parameters() if p.requires_grad}
        self.by_epoch[trainer.current_epoch] = thawed


@pytest.mark.parametrize(
    ("file", "phases"),
    [
        ("boring_4_phases.yaml", [["layer.3"], ["layer.2"], ["layer.1"], ["layer.0"]]),
        ("boring_3_phases.yaml", [["layer.3"], ["layer.2"], ["layer.1", "layer.0"]]),
    ],
)
def test_the_boring_model_schedules_thaw_one_linear_layer_per_phase(tmp_path, file, phases):
    """Patience 1 and a min_delta nothing can beat: phase 0 trains 2 epochs (the first sets the best score), every
    later phase 1 epoch."""
    probe = ThawedLayersProbe()
    fts = FinetuningScheduler(SEEDS / file, restore_best=False)
    stopper = PhaseEarlyStopping(patience=1, min_delta=1e9)
    trainer(tmp_path, [fts, stopper, probe], max_epochs=len(phases) + 1).fit(BoringModule())
    assert fts.curr_depth == len(phases) - 1
    expected, cumulative = [], set()
    for depth, phase in enumerate(phases):
        cumulative |= set(phase)
        expected += [set(cumulative)] * (2 if depth == 0 else 1)
    assert [probe.by_epoch[e] for e in sorted(probe.by_epoch)] == expected


def test_the_reinit_example_validates_on_deberta_v3_base_built_on_meta():
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(deberta_v3_base_config())
    names = [f"model.{name}" for name, _ in model.named_parameters()]
    schedule, never_thawed = resolve_schedule(load_schedule(REINIT_EXAMPLE), names)
    # phase 0 is the head in two groups (the module's no_decay split), as FTS's RTE example configures it
    check_phase_directives(schedule, 2, NO_DECAY)
    layer_params = [n for n in names if re.match(r"model\.deberta\.encoder\.layer\.\d+\.", n)]
    assert len(layer_params) == 12 * 16
    assert set(layer_params) <= set(schedule[2].params), "the {0,11} regex selects every layer of all 12"
    assert never_thawed == ["model.deberta.embeddings.word_embeddings.weight"]


@pytest.mark.slow
def test_the_reinit_example_runs_with_the_learning_rates_the_seed_describes(tmp_path):
    """FTS's figures: in phase 1 pg1 starts at init_pg_lrs' 2.0e-06 while pg3, added by phase 1, starts at the
    default 1.0e-05; in phase 2 pg1 oscillates between 1.0e-06 and 1.0e-07 and pg3 between 2.0e-06 and 1.0e-07
    (CosineAnnealingWarmRestarts, T_0=3). Run on a 2-layer DeBERTa-v2 with the same names, beside FTS itself."""
    pytest.importorskip("finetuning_scheduler", reason="the comparison with FTS needs it: pip install -e '.[test]'")
    import yaml

    losses = [1.0, 0.9, 0.95, 0.8, 0.85, 0.7, 0.69, 0.68, 0.67, 0.66, 0.65, 0.64]
    scenario = Scenario(
        "seed_reinit_example",
        yaml.safe_load(REINIT_EXAMPLE.read_text()),
        losses,
        scheduler="linear",
        no_decay=True,
        lr=1e-5,
    )
    ours = run_ftexp(scenario, tmp_path / "ftexp")
    assert differences(run_fts(scenario, tmp_path / "fts"), ours) == []

    by_phase = {depth: [e for e in ours.epochs if e.depth == depth] for depth in (1, 2)}
    phase1, phase2 = by_phase[1], by_phase[2]
    assert [g["lr"] for g in phase1[0].groups] == pytest.approx([2e-6, 2e-6, 1e-5, 1e-5])
    assert [g["weight_decay"] for g in phase1[0].groups] == [0.01, 0.0, 0.01, 0.0]
    pg1 = [e.groups[1]["lr"] for e in phase2]
    pg3 = [e.groups[3]["lr"] for e in phase2]
    assert pg1[0] == pytest.approx(1e-6) and pg3[0] == pytest.approx(2e-6)
    assert all(1e-7 <= lr <= 1e-6 * (1 + 1e-9) for lr in pg1) and all(1e-7 <= lr <= 2e-6 * (1 + 1e-9) for lr in pg3)
    assert pg1[1] < pg1[0] and pg1[3] == pytest.approx(1e-6), "cosine decay, then a warm restart after T_0=3 epochs"
    assert [e.schedulers for e in (phase1[0], phase2[0])] == [["StepLR"], ["CosineAnnealingWarmRestarts"]]
