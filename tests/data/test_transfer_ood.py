"""The transfer task's out-of-distribution test split (test_ood), as designed before any run: the test split's
held-out sentiment words in templates and about topic nouns that no train, validation or test sentence has;
reproducible per data seed, balanced, as large as configured; and tested as a second loader whose metrics are
test_ood_acc and test_ood_loss."""

from __future__ import annotations

import re
from functools import cache

import pytest
from torch.utils.data import DataLoader

from ftexp.data import HeldOutSentiment, PairClassificationDataModule
from ftexp.data.transfer import (
    ADVERBS,
    CONTRAST_TEMPLATES,
    LABEL_WORDS,
    NOUNS,
    OOD_CONTRAST_TEMPLATES,
    OOD_NOUNS,
    OOD_TEMPLATES,
    SPEAKERS,
    SPLITS,
    TEMPLATES,
    TIMES,
)
from ftexp.train import build
from tests.models.local_copies import compose_config

POLARITY = {word: label for split in SPLITS for label, words in LABEL_WORDS[split].items() for word in words}
IN_DISTRIBUTION_TEMPLATES = (*TEMPLATES, *CONTRAST_TEMPLATES)
OOD_ALL_TEMPLATES = (*OOD_TEMPLATES, *OOD_CONTRAST_TEMPLATES)
SMALL = ["data.synthetic.n_train=32", "data.synthetic.n_validation=16", "data.synthetic.n_test=16"]


def one_of(words: tuple[str, ...] | list[str]) -> str:
    return "(?:" + "|".join(re.escape(word) for word in words) + ")"


@cache
def template_pattern(template: str) -> re.Pattern[str]:
    """The sentences ``template`` can produce with *any* noun (of either split), sentiment word, speaker, adverb
    and optional time phrase: a sentence that no such pattern of another split's templates matches could not have
    come from one of them, whatever it was filled with."""
    slots = {
        "noun": one_of([*NOUNS, *OOD_NOUNS]),
        "noun2": one_of([*NOUNS, *OOD_NOUNS]),
        "word": one_of(sorted(POLARITY)),
        "word2": one_of(sorted(POLARITY)),
        "other": one_of(sorted(POLARITY)),
        "speaker": one_of(SPEAKERS),
        "adverb": f"(?:{one_of(ADVERBS)} )?",
    }
    body = re.sub(r"\\\{(\w+)\\\}", lambda slot: slots[slot.group(1)], re.escape(template))
    return re.compile(f"(?:{one_of(TIMES)} )?{body}")


def matches_any(sentence: str, templates: tuple[str, ...]) -> bool:
    return any(template_pattern(template).fullmatch(sentence) for template in templates)


@pytest.fixture(scope="module")
def sentences() -> dict[str, list[str]]:
    task = HeldOutSentiment(n_train=600, n_validation=600, n_test=600, n_test_ood=600)
    return {split: [example.sentence for example in task.split(split)] for split in task.splits}


# ------------------------------------------------------------------ disjoint from the other splits
def test_no_other_split_s_sentence_fits_an_ood_template_and_no_ood_sentence_fits_another_split_s(sentences):
    for split in SPLITS:
        assert all(matches_any(sentence, IN_DISTRIBUTION_TEMPLATES) for sentence in sentences[split]), "self-check"
        assert [sentence for sentence in sentences[split] if matches_any(sentence, OOD_ALL_TEMPLATES)] == []
    assert all(matches_any(sentence, OOD_ALL_TEMPLATES) for sentence in sentences["test_ood"]), "self-check"
    assert [sentence for sentence in sentences["test_ood"] if matches_any(sentence, IN_DISTRIBUTION_TEMPLATES)] == []


def test_the_ood_templates_are_used_and_each_brings_words_that_no_other_split_has(sentences):
    """Beyond the frames: every OOD template has a word of its own (not only a new order of shared words)."""
    other_tokens = {token for split in SPLITS for sentence in sentences[split] for token in sentence.split()}
    for template in OOD_ALL_TEMPLATES:
        assert any(template_pattern(template).fullmatch(sentence) for sentence in sentences["test_ood"]), template
        own = {word for word in template.split() if not word.startswith("{")} - other_tokens
        assert own, f"every word of {template!r} occurs in the other splits"


def test_the_ood_topic_nouns_occur_in_no_other_split_and_the_other_nouns_not_in_ood(sentences):
    other_tokens = {token for split in SPLITS for sentence in sentences[split] for token in sentence.split()}
    ood_tokens = {token for sentence in sentences["test_ood"] for token in sentence.split()}
    assert not other_tokens & set(OOD_NOUNS)
    assert not ood_tokens & set(NOUNS)
    assert set(OOD_NOUNS) <= ood_tokens, "every OOD noun is used"


def test_the_ood_split_uses_exactly_the_test_split_s_held_out_sentiment_words(sentences):
    used = {token for sentence in sentences["test_ood"] for token in sentence.split() if token in POLARITY}
    assert used == set(LABEL_WORDS["test"][0] + LABEL_WORDS["test"][1])


def test_contrastive_ood_sentences_carry_both_polarities_and_their_verdict_is_the_label():
    for example in HeldOutSentiment(n_test_ood=300, contrast=1.0).split("test_ood"):
        words = [token for token in example.sentence.split() if token in POLARITY]
        assert len(words) == 2 and {POLARITY[word] for word in words} == {0, 1}, example.sentence
        # the verdict comes first only before "despite <speaker> calling it" and "in spite of"
        verdict = words[0] if re.search(r"\b(despite .+ calling it|in spite of)\b", example.sentence) else words[1]
        assert POLARITY[verdict] == example.label, example.sentence


# ------------------------------------------------------------------ determinism, balance, size
def test_the_ood_split_is_the_same_for_a_seed_and_differs_between_seeds():
    task = HeldOutSentiment(n_test_ood=64, seed=3)
    assert HeldOutSentiment(n_test_ood=64, seed=3).split("test_ood") == task.split("test_ood")
    assert HeldOutSentiment(n_train=999, n_test=7, n_test_ood=64, seed=3).split("test_ood") == task.split("test_ood")
    assert HeldOutSentiment(n_test_ood=64, seed=4).split("test_ood") != task.split("test_ood")


def test_adding_the_ood_split_left_the_other_splits_sentences_as_they_were():
    """The published results were measured on these sentences (test_transfer_task pins the first ones)."""
    assert HeldOutSentiment(seed=1, n_test_ood=1).split("test") == HeldOutSentiment(seed=1).split("test")


@pytest.mark.parametrize("size", [64, 101])
def test_the_ood_split_has_the_configured_size_and_balanced_labels(size):
    labels = [example.label for example in HeldOutSentiment(n_test_ood=size).split("test_ood")]
    assert len(labels) == size
    assert abs(labels.count(1) - labels.count(0)) == size % 2


def test_the_ood_size_is_checked():
    with pytest.raises(ValueError, match="transfer task: n_test_ood must be a positive integer, got 0"):
        HeldOutSentiment(n_test_ood=0)


def test_the_word_level_tokenizer_knows_the_ood_words_after_every_word_it_knew_before(sentences):
    vocabulary = HeldOutSentiment.vocabulary()
    tokenizer = PairClassificationDataModule(task="transfer", max_seq_length=32).tokenizer
    ood_tokens = {token for sentence in sentences["test_ood"] for token in sentence.split()}
    assert tokenizer.unk_token_id not in tokenizer.convert_tokens_to_ids(sorted(ood_tokens))
    other_tokens = {token for split in SPLITS for sentence in sentences[split] for token in sentence.split()}
    ood_only = ood_tokens - other_tokens
    assert min(vocabulary.index(token) for token in ood_only) > max(vocabulary.index(t) for t in other_tokens)


# ------------------------------------------------------------------ tested as a second loader
def test_only_a_task_with_an_ood_split_is_tested_on_two_loaders():
    transfer = PairClassificationDataModule(task="transfer", max_seq_length=32, synthetic={"n_test_ood": 8})
    transfer.setup("test")
    loaders = transfer.test_dataloader()
    assert [len(loader.dataset) for loader in loaders] == [512, 8], "the test split first, then test_ood"
    synthetic = PairClassificationDataModule(task="synthetic", max_seq_length=32, synthetic={"n_test": 8})
    synthetic.setup("test")
    assert isinstance(synthetic.test_dataloader(), DataLoader)


# one batch: the default schedule's phases would start past max_epochs=1
@pytest.mark.filterwarnings(r"ignore:ftexp. phase \d max_transition_epoch:UserWarning")
def test_a_short_fit_tests_both_splits_under_clean_metric_names(tmp_path):
    cfg = compose_config(tmp_path, "model=tiny", "data=transfer", "debug=fast_dev_run", *SMALL)
    objects = build(cfg)
    objects.trainer.fit(objects.model, datamodule=objects.datamodule)
    per_loader = objects.trainer.test(objects.model, datamodule=objects.datamodule)

    assert [set(metrics) for metrics in per_loader] == [{"test_loss", "test_acc"}, {"test_ood_loss", "test_ood_acc"}]
    assert {"test_loss", "test_acc", "test_ood_loss", "test_ood_acc"} <= set(objects.trainer.callback_metrics)
    batch = next(iter(objects.datamodule.test_dataloader()[1]))
    with pytest.raises(ValueError, match="test dataloader 2: the model names the metrics of 2 test dataloaders"):
        objects.model.test_step(batch, 0, dataloader_idx=2)
