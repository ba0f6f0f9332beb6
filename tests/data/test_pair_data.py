"""The synthetic pair task, its tokenizer and the pair-classification DataModule; the hub path fails fast."""

from __future__ import annotations

import pytest
import torch

from ftexp.data import PairClassificationDataModule, SyntheticPairs, build_tokenizer
from ftexp.data.synthetic import CATEGORIES, CATEGORY_OF, PairExample
from ftexp.data.tasks import load_hub_dataset
from ftexp.hub import HubUnavailableError


def claim_holds(premise: str, hypothesis: str) -> bool:
    """The task's rule, re-derived from the text alone."""
    words, claim = premise.split(), hypothesis.split()
    if claim[-1] in CATEGORY_OF:  # "there is a cat"
        return claim[-1] in words
    category = claim[-1].removesuffix("s")
    needed = {"a": 1, "two": 2, "three": 3}[claim[2]]
    return sum(CATEGORY_OF.get(word) == category for word in words) >= needed


def test_every_label_is_entailment_exactly_when_the_premise_supports_the_claim():
    examples = SyntheticPairs(n_train=2000).split("train")
    assert all((example.label == 0) == claim_holds(example.premise, example.hypothesis) for example in examples)


def test_a_seed_s_pairs_never_change():
    """The published results (docs/results) and the examples in the docs were made from these pairs."""
    assert SyntheticPairs(seed=1).split("validation")[:2] == [
        PairExample("the green cello follows the drum and the heavy bird finds the spade", "there is a melon", 1),
        PairExample("the goat follows the wrench and the drill finds the sheep", "there is a goat", 0),
    ]


def test_splits_are_balanced_reproducible_and_independent_of_the_other_splits_sizes():
    task = SyntheticPairs(n_train=100, n_validation=50, seed=3)
    validation = task.split("validation")
    assert sum(example.label for example in validation) == 25
    assert SyntheticPairs(n_train=999, n_validation=50, seed=3).split("validation") == validation
    assert SyntheticPairs(n_train=100, n_validation=50, seed=4).split("validation") != validation


def test_the_tokenizer_encodes_a_pair_bert_style_and_knows_every_generated_word():
    tokenizer = build_tokenizer(max_length=32)
    encoding = tokenizer("the cat sees the bus", "there is a vehicle")
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    assert tokens == ["[CLS]", "the", "cat", "sees", "the", "bus", "[SEP]", "there", "is", "a", "vehicle", "[SEP]"]
    assert encoding["token_type_ids"] == [0] * 7 + [1] * 5
    assert tokenizer.pad_token_id == 0
    words = {word for example in SyntheticPairs().split("train") for word in example.premise.split()}
    assert tokenizer.unk_token_id not in tokenizer.convert_tokens_to_ids(sorted(words | set(CATEGORIES)))


def test_batches_are_padded_to_their_longest_pair_and_carry_labels():
    datamodule = PairClassificationDataModule(synthetic={"n_train": 64, "n_validation": 16, "n_test": 16}, batch_size=8)
    datamodule.setup("fit")
    batch = next(iter(datamodule.val_dataloader()))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    lengths = batch["attention_mask"].sum(dim=1)
    assert batch["input_ids"].shape == (8, int(lengths.max()))
    assert torch.equal(batch["input_ids"] == 0, batch["attention_mask"] == 0)
    assert batch["labels"].dtype == torch.int64 and datamodule.num_labels == 2


def test_configuration_mistakes_are_reported_before_any_data_is_loaded():
    with pytest.raises(ValueError, match="unknown task 'mnli'"):
        PairClassificationDataModule(task="mnli")
    with pytest.raises(ValueError, match="needs a pretrained tokenizer"):
        PairClassificationDataModule(task="rte")
    with pytest.raises(ValueError, match=r"only used by the generated tasks \(synthetic, transfer\), not by 'rte'"):
        PairClassificationDataModule(task="rte", tokenizer="bert-base-uncased", synthetic={"n_train": 8})


def test_an_unreachable_hub_fails_at_once_and_says_how_to_use_a_local_copy(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(
        HubUnavailableError, match=r"(?s)'aps/super_glue'.*unreachable.*data\.data_dir=.*HF_HUB_OFFLINE"
    ):
        load_hub_dataset("rte", "aps/super_glue", "rte")
