"""The held-out-sentiment task (data=transfer), its tokenizers and the offline_transfer experiment: each split is
scored by its own sentiment words, never seen in another split; every schedule runs on MiniLM under fast_dev_run."""

from __future__ import annotations

import re
from itertools import combinations

import pytest
import torch
from transformers import AutoTokenizer

from ftexp.config import validate_config
from ftexp.data import HeldOutSentiment, PairClassificationDataModule
from ftexp.data.transfer import LABEL_WORDS, SPLITS, SentenceExample
from ftexp.hub import resolve_pretrained
from ftexp.train import build, run
from tests.models.local_copies import MINILM, compose_config, needs_minilm

POLARITY = {word: label for split in SPLITS for label, words in LABEL_WORDS[split].items() for word in words}
SMALL = ["data.synthetic.n_train=32", "data.synthetic.n_validation=16", "data.synthetic.n_test=16"]

# all-MiniLM-L6-v2: hidden 384, intermediate 1536, 6 layers, 30522 words, 512 positions, 2 token types
HEAD = 384 * 2 + 2
POOLER = 384 * 384 + 384
LAYER = 4 * POOLER + 2 * 384 + (384 * 1536 + 1536) + (1536 * 384 + 384) + 2 * 384
EMBEDDINGS = (30522 + 512 + 2) * 384 + 2 * 384
TOTAL = HEAD + POOLER + 6 * LAYER + EMBEDDINGS
# trainable weights through each phase, as each schedule option defines its phases for MiniLM
PHASES = {
    "nofts": [TOTAL],
    "freeze": [HEAD],
    "freeze_unfreeze": [HEAD, TOTAL],
    "backbone": [HEAD, TOTAL],
    "unfreeze_milestones": [HEAD, HEAD + POOLER + LAYER, TOTAL],  # the last layer (and the pooler above it)
    # ft_schedules/minilm_transfer.yaml (the phases of ft_schedules/minilm.yaml, with epochs and lrs)
    "explicit": [HEAD + POOLER, HEAD + POOLER + 3 * LAYER, HEAD + POOLER + 6 * LAYER, TOTAL],
    "implicit": [HEAD, HEAD + POOLER, *(HEAD + POOLER + n * LAYER for n in range(1, 7)), TOTAL],  # blocks
    # naive: two tensors a phase, to max_depth 3: last layer's output LayerNorm, then its output dense
    "implicit_naive": [HEAD, HEAD + POOLER, HEAD + POOLER + 768, HEAD + POOLER + 768 + 1536 * 384 + 384],
}


def sentiment_words(sentence: str) -> list[str]:
    return [word for word in sentence.split() if word in POLARITY]


def words_of(split: str) -> set[str]:
    """The sentiment words of both polarities that ``split`` is written with."""
    return set(LABEL_WORDS[split][0] + LABEL_WORDS[split][1])


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return AutoTokenizer.from_pretrained(resolve_pretrained(MINILM))


@pytest.fixture
def restore_threads():
    """run() applies cpu_threads to this process."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ the generator
def test_a_seed_s_sentences_never_change():
    """The published results (docs/results) were measured on these sentences."""
    assert HeldOutSentiment(seed=1).split("train")[:2] == [
        SentenceExample("the guide found the performance sloppy and so dreadful", 0),
        SentenceExample("everyone said the song was rotten but i found it rather remarkable", 1),
    ]


def test_each_split_is_reproducible_per_seed_and_independent_of_the_other_splits_sizes():
    task = HeldOutSentiment(n_train=64, n_validation=32, n_test=32, seed=3)
    assert HeldOutSentiment(n_train=64, n_validation=32, n_test=32, seed=3).split("test") == task.split("test")
    assert HeldOutSentiment(n_train=999, n_validation=32, n_test=32, seed=3).split("test") == task.split("test")
    assert HeldOutSentiment(n_train=64, n_validation=32, n_test=32, seed=4).split("test") != task.split("test")


def test_the_word_lists_are_pairwise_disjoint_across_splits_and_polarities():
    for first, second in combinations(SPLITS, 2):
        assert not words_of(first) & words_of(second)
    for split in SPLITS:
        assert not set(LABEL_WORDS[split][0]) & set(LABEL_WORDS[split][1])


def test_the_generated_sentences_of_each_split_use_only_that_split_s_sentiment_words():
    task = HeldOutSentiment(n_train=1000, n_validation=1000, n_test=1000)
    used = {split: {word for e in task.split(split) for word in sentiment_words(e.sentence)} for split in SPLITS}
    for split in SPLITS:
        assert used[split] == words_of(split), "every word of the split is used, and no other"
    for first, second in combinations(SPLITS, 2):
        assert not used[first] & used[second], f"{first} and {second} share sentiment words"


def test_labels_are_balanced_in_every_split():
    task = HeldOutSentiment(n_train=100, n_validation=50, n_test=64)
    for split in SPLITS:
        labels = [example.label for example in task.split(split)]
        assert labels.count(1) == labels.count(0) == task.size(split) // 2


def test_plain_sentences_carry_only_their_label_s_polarity_and_contrastive_ones_both():
    plain = HeldOutSentiment(n_train=500, contrast=0.0).split("train")
    assert all({POLARITY[word] for word in sentiment_words(e.sentence)} == {e.label} for e in plain)
    contrastive = HeldOutSentiment(n_train=500, contrast=1.0).split("train")
    for example in contrastive:
        words = sentiment_words(example.sentence)
        assert len(words) == 2 and {POLARITY[word] for word in words} == {0, 1}
        # the verdict: the word after "but ... it was/turned out/found it", or the first one before "even though"
        # or "although"
        verdict = words[0] if re.search(r"\b(even though|although)\b", example.sentence) else words[1]
        assert POLARITY[verdict] == example.label, example.sentence


def test_the_neutral_words_do_not_tell_the_labels_apart():
    examples = HeldOutSentiment(n_train=2000).split("train")
    neutral = [{word for e in examples if e.label == label for word in e.sentence.split()} for label in (0, 1)]
    assert neutral[0] - set(POLARITY) == neutral[1] - set(POLARITY)


def test_the_contrast_fraction_and_split_sizes_are_checked():
    with pytest.raises(ValueError, match=r"contrast must be a fraction between 0 and 1, got 1\.5"):
        HeldOutSentiment(contrast=1.5)
    with pytest.raises(ValueError, match="n_test must be a positive integer"):
        HeldOutSentiment(n_test=0)


# ------------------------------------------------------------------ tokenizers and the datamodule
def test_the_word_level_tokenizer_knows_every_word_of_every_split():
    tokenizer = PairClassificationDataModule(task="transfer", max_seq_length=32).tokenizer  # no pretrained one
    task = HeldOutSentiment(n_train=1000, n_validation=1000, n_test=1000)
    words = {word for split in SPLITS for e in task.split(split) for word in e.sentence.split()}
    assert tokenizer.unk_token_id not in tokenizer.convert_tokens_to_ids(sorted(words))
    assert set(POLARITY) <= set(tokenizer.get_vocab()), "test words get their own ids, not [UNK]"
    encoding = tokenizer("The movie was amazing")
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    assert tokens == ["[CLS]", "the", "movie", "was", "amazing", "[SEP]"]
    assert encoding["token_type_ids"] == [0] * 6


@needs_minilm
def test_every_word_the_task_uses_is_one_minilm_wordpiece(minilm_tokenizer):
    words = HeldOutSentiment.vocabulary()[4:]  # after the special tokens
    assert [word for word in words if len(minilm_tokenizer.tokenize(word)) != 1] == []


@pytest.mark.parametrize("tokenizer", [None, pytest.param(MINILM, marks=needs_minilm)], ids=["word-level", "minilm"])
def test_the_datamodule_yields_single_sentence_batches(tokenizer):
    datamodule = PairClassificationDataModule(
        task="transfer", tokenizer=tokenizer, max_seq_length=32, batch_size=8, synthetic={"n_train": 16}
    )
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape[0] == 8 and datamodule.num_labels == 2
    assert not batch["token_type_ids"].any(), "one segment"
    first = datamodule.tokenizer.decode(datamodule.datasets["train"][0]["input_ids"], skip_special_tokens=True)
    assert first == HeldOutSentiment(n_train=16).split("train")[0].sentence


@pytest.mark.usefixtures("restore_threads")
def test_the_tiny_model_gets_the_word_level_tokenizer_embeds_every_word_and_runs(tmp_path):
    cfg = compose_config(tmp_path, "model=tiny", "data=transfer", "debug=fast_dev_run", *SMALL)
    objects = build(cfg)
    assert objects.datamodule.tokenizer_source is None
    assert objects.model.model.get_input_embeddings().num_embeddings == len(HeldOutSentiment.vocabulary())
    assert run(cfg)["status"] == "completed"


# ------------------------------------------------------------------ the experiment overlay
def test_the_offline_transfer_overlay_composes_minilm_on_the_transfer_task(tmp_path):
    cfg = compose_config(tmp_path, "experiment=offline_transfer")
    validate_config(cfg)
    assert cfg.name == "offline_transfer"
    assert (cfg.model.pretrained, cfg.data.task, cfg.data.tokenizer) == (MINILM, "transfer", MINILM)
    assert cfg.schedule.name == "explicit" and cfg.explicit_schedule.endswith("ft_schedules/minilm_transfer.yaml")
    assert cfg.schedule.callbacks.early_stopping.min_delta == 0.01, "one improvement threshold for every scenario"


@needs_minilm
@pytest.mark.usefixtures("restore_threads")
# one batch: the epochs at which presets thaw lie past max_epochs=1, and freeze leaves the backbone out of every phase
@pytest.mark.filterwarnings(r"ignore:ftexp. (phase \d max_transition_epoch|103 parameters):UserWarning")
@pytest.mark.parametrize("schedule", sorted(PHASES))
def test_every_schedule_runs_one_batch_of_minilm_on_the_transfer_task(tmp_path, schedule):
    cfg = compose_config(tmp_path, "experiment=offline_transfer", f"schedule={schedule}", "debug=fast_dev_run", *SMALL)
    result = run(cfg)

    assert (result["name"], result["scenario"], result["status"]) == ("offline_transfer", schedule, "completed")
    assert result["total_params"] == TOTAL
    assert list(result["trainable_params_per_phase"].values()) == PHASES[schedule]
    assert [phase["depth"] for phase in result["phases_run"]] == [0], "one batch: no transition"
    assert {"test_loss", "test_acc"} <= set(result["test"])
