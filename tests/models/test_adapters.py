"""Adapters from Hugging Face peft on a transformers classifier (``ftexp.models.adapters``): exactly the adapters and
the task head train, bad adapter settings are refused naming ``model.peft``, and every wrapped parameter name maps
back to the plain model's (schedules written for the plain model resolve through the wrapper)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from transformers import AutoModelForSequenceClassification, BertConfig

from ftexp.config import ConfigError
from ftexp.models.adapters import is_adapter, plain_name, with_adapters
from ftexp.train import build, run
from tests.helpers import compose_config

QUICK = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=csv",
]


def tiny_bert():
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=99)
    return AutoModelForSequenceClassification.from_config(config)


def trainable(model) -> list[str]:
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def test_lora_trains_exactly_its_adapters_on_query_and_value_and_the_head():
    plain = tiny_bert()
    wrapped = with_adapters(plain, "lora", {"r": 4, "alpha": 8})

    names = [plain_name(name) for name in trainable(wrapped)]
    adapters = [
        f"bert.encoder.layer.{i}.attention.self.{m}.lora_{ab}.weight"
        for i in (0, 1)
        for m in ("query", "value")
        for ab in "AB"
    ]
    assert sorted(names) == sorted([*adapters, "classifier.weight", "classifier.bias"])
    lora_a = dict(wrapped.named_parameters())[
        "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.default.weight"
    ]
    assert tuple(lora_a.shape) == (4, 32), "rank r"


def test_every_plain_parameter_has_its_wrapped_twin_and_peft_s_frozen_head_copy_has_none():
    names = [name for name, _ in tiny_bert().named_parameters()]
    wrapped = [name for name, _ in with_adapters(tiny_bert(), "lora", {}).named_parameters()]

    plain = [plain_name(name) for name in wrapped]
    assert set(names) <= set(plain)
    assert [w for w, p in zip(wrapped, plain, strict=True) if p is None] == [
        "base_model.model.classifier.original_module.weight",
        "base_model.model.classifier.original_module.bias",
    ]
    assert plain_name("base_model.model.bert.encoder.layer.0.attention.self.query.base_layer.weight") == (
        "bert.encoder.layer.0.attention.self.query.weight"
    )


def test_ia3_trains_its_scaling_vectors_and_the_head():
    wrapped = with_adapters(
        tiny_bert(),
        "ia3",
        {"target_modules": ["key", "value", "output.dense"], "feedforward_modules": ["output.dense"]},
    )

    names = {plain_name(name) for name in trainable(wrapped)}
    assert {"classifier.weight", "classifier.bias"} <= names
    assert {name for name in names if "ia3_l" in name} and all(
        "ia3_l" in name or name.startswith("classifier.") for name in names
    )


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("lora", {"target_modules": ["query_proj"]}, r"model.peft.target_modules: .* linear layers, by name: .*query"),
        ("prefix", {}, r"model.peft.method: unknown adapter method 'prefix'; known: lora, ia3"),
        ("lora", {"rank": 4}, r"model.peft: lora takes no rank \(it takes alpha, dropout, r, target_modules\)"),
    ],
)
def test_bad_adapter_settings_are_refused_naming_the_key(method, options, message):
    with pytest.raises(ValueError, match=message):
        with_adapters(tiny_bert(), method, options)


def test_the_lora_scenario_trains_exactly_the_adapters_and_the_head_and_leaves_the_base_weights_as_they_were(
    tmp_path,
):
    threads = torch.get_num_threads()
    try:
        cfg = compose_config(tmp_path, *QUICK, "model.peft={method: lora, r: 4}", "schedule=lora")
        pl.seed_everything(cfg.seed, workers=True, verbose=False)  # as run() does: the same initial weights
        before = {name: p.detach().clone() for name, p in build(cfg).model.named_parameters()}
        result = run(cfg)
    finally:
        torch.set_num_threads(threads)

    assert result["status"] == "completed"
    after = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    trained = {name for name in before if not torch.equal(after[name], before[name])}
    adapters = {name for name in before if is_adapter(name)}
    head = {name for name in before if ".modules_to_save." in name}
    assert len(adapters) == 8 and len(head) == 2  # query and value of 2 layers, A and B; the head's weight and bias
    assert trained <= adapters | head, "nothing else moved"
    assert head <= trained and any(".lora_B." in name for name in trained), "the head and the adapters learned"


def test_schedule_lora_brings_lora_adapters_unless_the_command_line_sets_model_peft(tmp_path):
    assert compose_config(tmp_path, "schedule=lora").model.peft == "lora"
    assert compose_config(tmp_path, "schedule=lora_then_thaw", "model.peft=ia3").model.peft == "ia3"
    assert compose_config(tmp_path, "schedule=explicit").model.peft is None
    with pytest.raises(ConfigError, match=r"the model has no adapters: set model.peft=lora"):
        build(compose_config(tmp_path, "schedule=lora", "model.peft=null"))
