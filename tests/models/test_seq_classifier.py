"""SequenceClassifier: built from a config offline, optimizing only trainable parameters in decay/no-decay groups."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from ftexp.models import SequenceClassifier

TINY = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}


def tiny(**kwargs) -> SequenceClassifier:
    return SequenceClassifier(backbone={**TINY, "intermediate_size": 64}, vocab_size=50, pad_token_id=0, **kwargs)


def test_only_trainable_parameters_reach_the_optimizer_with_biases_and_layernorm_weights_undecayed():
    model = tiny(optimizer=partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.1))
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(("model.classifier", "model.bert.encoder.layer.1.output")))
    names = {id(p): name for name, p in model.named_parameters()}

    decay, exempt = model.configure_optimizers().param_groups

    assert sorted(names[id(p)] for p in decay["params"]) == [
        "model.bert.encoder.layer.1.output.dense.weight",
        "model.classifier.weight",
    ]
    assert sorted(names[id(p)] for p in exempt["params"]) == [
        "model.bert.encoder.layer.1.output.LayerNorm.bias",
        "model.bert.encoder.layer.1.output.LayerNorm.weight",
        "model.bert.encoder.layer.1.output.dense.bias",
        "model.classifier.bias",
    ]
    assert (decay["weight_decay"], exempt["weight_decay"]) == (0.1, 0.0)
    assert model.no_decay == ["bias", "LayerNorm.weight"]


def test_the_lr_scheduler_factory_and_its_lightning_keys_are_returned_together():
    model = tiny(
        lr_scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        lr_scheduler_config={"interval": "epoch", "name": "step"},
    )
    config = model.configure_optimizers()
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert (config["lr_scheduler"]["interval"], config["lr_scheduler"]["name"]) == ("epoch", "step")


def test_the_backbone_is_sized_by_the_tokenizer_and_the_task():
    model = SequenceClassifier(backbone={**TINY}, num_labels=3, vocab_size=71, pad_token_id=0)
    assert model.model.get_input_embeddings().num_embeddings == 71
    assert model.model.classifier.out_features == 3
    assert "optimizer" not in model.hparams, "factories stay out of checkpoints"


def test_exactly_one_of_pretrained_and_backbone_is_required():
    with pytest.raises(ValueError, match="exactly one of 'pretrained'"):
        SequenceClassifier()
    with pytest.raises(ValueError, match="exactly one of 'pretrained'"):
        SequenceClassifier(pretrained="bert-base-uncased", backbone=TINY)
    with pytest.raises(ValueError, match="missing 'model_type'"):
        SequenceClassifier(backbone={"hidden_size": 32})
