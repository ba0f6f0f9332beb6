"""A deterministic, offline sentence-pair task and a tokenizer built for it, so demos and tests need no download.

Premises describe a few objects ("the red cat follows the old bus and the pear passes the drum"); the hypothesis
claims something the premise may entail: that it mentions a given noun ("there is a cat"), or at least one, two or
three things of a category ("there is a vehicle", "there are two fruits"). The label says whether the claim holds
(0 = entailment, 1 = not_entailment, as in RTE; balanced in every split). Part of the signal is easy (a claim of
three is rarely true) and part needs relating the two segments (counting the premise's nouns of the hypothesis's
category), so accuracy keeps rising as more of a transformer trains.

Example::

    task = SyntheticPairs(n_train=8, n_validation=4, n_test=4, seed=0)
    task.split("train")[0]
    # PairExample(premise='the bright spade sees the car', hypothesis='there are three vehicles', label=1)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from transformers import PreTrainedTokenizerFast

from ftexp.data.generated import SPECIAL_TOKENS, GeneratedSplits, word_level_tokenizer

CATEGORIES: dict[str, tuple[str, ...]] = {
    "animal": ("cat", "dog", "horse", "bird", "fish", "mouse", "sheep", "goat"),
    "vehicle": ("car", "bus", "train", "bike", "boat", "truck", "plane", "tram"),
    "fruit": ("apple", "pear", "plum", "grape", "lemon", "mango", "peach", "melon"),
    "tool": ("hammer", "saw", "drill", "wrench", "knife", "spade", "chisel", "ladder"),
    "instrument": ("piano", "drum", "flute", "violin", "guitar", "harp", "horn", "cello"),
}
CATEGORY_OF = {noun: category for category, nouns in CATEGORIES.items() for noun in nouns}
NOUNS = tuple(CATEGORY_OF)
ADJECTIVES = ("red", "small", "old", "quiet", "fast", "green", "heavy", "bright")
VERBS = ("sees", "follows", "passes", "finds", "holds", "watches")
HYPOTHESES = {1: "there is a {}", 2: "there are two {}s", 3: "there are three {}s"}
FUNCTION_WORDS = ("the", "and", "there", "is", "are", "a", "two", "three")
LABEL_NAMES = ("entailment", "not_entailment")


@dataclass(frozen=True)
class PairExample:
    premise: str
    hypothesis: str
    label: int


@dataclass(frozen=True)
class SyntheticPairs(GeneratedSplits):
    """Split sizes and the data seed (:meth:`~ftexp.data.generated.GeneratedSplits.split` gives the examples)."""

    task: ClassVar[str] = "synthetic task"
    seed_prefix: ClassVar[str] = "ftexp-synthetic-pairs"
    n_train: int = 4000
    n_validation: int = 500
    n_test: int = 500
    seed: int = 0

    def example(self, rng: random.Random, split: str, label: int) -> PairExample:
        """Every split draws from the same nouns and claims: only its random stream differs."""
        return make_example(rng, label)

    @classmethod
    def vocabulary(cls) -> list[str]:
        plurals = [f"{category}s" for category in CATEGORIES]
        return [*SPECIAL_TOKENS, *FUNCTION_WORDS, *CATEGORIES, *plurals, *NOUNS, *ADJECTIVES, *VERBS]


def make_example(rng: random.Random, label: int) -> PairExample:
    """A premise of 1-3 clauses (2, 4 or 6 nouns) and a hypothesis with the given label about how many things of
    one category (or whether one noun) it mentions."""
    focus = rng.sample(sorted(CATEGORIES), 2)  # most nouns come from two categories, so counts of 2-3 are common
    nouns = []
    for _ in range(2 * rng.randint(1, 3)):
        category = rng.choice(focus) if rng.random() < 0.8 else rng.choice(sorted(CATEGORIES))
        nouns.append(rng.choice([n for n in CATEGORIES[category] if n not in nouns]))
    clauses = []
    for subject, obj in zip(nouns[::2], nouns[1::2], strict=True):
        adjective = f"{rng.choice(ADJECTIVES)} " if rng.random() < 0.5 else ""
        clauses.append(f"the {adjective}{subject} {rng.choice(VERBS)} the {obj}")
    counts = {category: sum(CATEGORY_OF[n] == category for n in nouns) for category in CATEGORIES}
    if rng.random() < 0.25:  # about one noun: entailed only if the premise mentions it
        noun = rng.choice(nouns) if label == 0 else rng.choice([n for n in NOUNS if n not in nouns])
        return PairExample(" and ".join(clauses), f"there is a {noun}", label)
    # (category, n) claims "at least n"; entailed iff the premise mentions >= n things of that category
    claims = [(c, n) for c in sorted(CATEGORIES) for n in (1, 2, 3) if (counts[c] >= n) == (label == 0)]
    category, number = rng.choice(claims)
    return PairExample(" and ".join(clauses), HYPOTHESES[number].format(category), label)


def build_tokenizer(max_length: int) -> PreTrainedTokenizerFast:
    """The synthetic task's tokenizer without a datamodule (the tiny model's example, local model copies in the
    tests): word-level over :meth:`SyntheticPairs.vocabulary`, ``[CLS] premise [SEP] hypothesis [SEP]`` with token
    type ids 0/1; unknown words map to ``[UNK]``."""
    return word_level_tokenizer(SyntheticPairs.vocabulary(), max_length)
