"""What the generated tasks (:mod:`ftexp.data.synthetic`, :mod:`ftexp.data.transfer`) share: split sizes checked up
front, one reproducible random stream per split, and a word-level tokenizer for the models trained from scratch on
them."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPLITS = ("train", "validation", "test")
# the name of a generated task's out-of-distribution test split, where it has one (the transfer task's): evaluated
# after the test split, as a second test loader (PairClassificationDataModule.test_dataloader)
OOD_TEST_SPLIT = "test_ood"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


@dataclass(frozen=True)
class GeneratedSplits(ABC):
    """Split sizes and the data seed of a generated task. Subclasses give their own defaults, ``task`` (the name
    their errors start with), ``seed_prefix`` (which keeps two tasks with the same seed from sharing a random
    stream), how one example is made (:meth:`example`) and every word it can contain (:meth:`vocabulary`). A task
    with more splits than :data:`SPLITS` (e.g. :data:`OOD_TEST_SPLIT`) lists them in ``splits`` and has an
    ``n_<split>`` field for each."""

    task: ClassVar[str] = "generated task"
    seed_prefix: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = SPLITS
    n_train: int
    n_validation: int
    n_test: int
    seed: int = 0

    def __post_init__(self) -> None:
        for split in self.splits:
            size = self.size(split)
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"{self.task}: n_{split} must be a positive integer, got {size!r}")

    def size(self, split: str) -> int:
        if split not in self.splits:
            raise ValueError(f"{self.task}: unknown split {split!r}; splits are {', '.join(self.splits)}")
        return getattr(self, f"n_{split}")

    def split(self, split: str) -> list[Any]:
        """The examples of ``split``. Each split has its own random stream, so resizing one leaves the others
        unchanged; the stream depends on the data seed only, so every training seed sees the same data."""
        self.size(split)  # an unknown split fails here
        # A string seed is hashed with SHA-512 by `random`, so the stream is the same in every process.
        rng = random.Random(f"{self.seed_prefix}/{self.seed}/{split}")
        return [self.example(rng, split, label) for label in self.balanced_labels(split, rng)]

    def balanced_labels(self, split: str, rng: random.Random) -> list[int]:
        """0 and 1 alternately, shuffled: every split is balanced by construction."""
        labels = [i % 2 for i in range(self.size(split))]
        rng.shuffle(labels)
        return labels

    @abstractmethod
    def example(self, rng: random.Random, split: str, label: int) -> Any:
        """One example of ``split`` with ``label``, drawn from ``rng`` (the split's stream)."""

    @classmethod
    @abstractmethod
    def vocabulary(cls) -> list[str]:
        """Every word the task can produce in any split, :data:`SPECIAL_TOKENS` first ([PAD] is id 0), in a fixed
        order: the vocabulary of its :func:`word_level_tokenizer`."""


def word_level_tokenizer(vocabulary: Sequence[str], max_length: int) -> PreTrainedTokenizerFast:
    """A BERT-style tokenizer over whole words (``vocabulary`` starts with :data:`SPECIAL_TOKENS`, so [PAD] is
    id 0): ``[CLS] a [SEP]``, or ``[CLS] a [SEP] b [SEP]`` with token type ids 0/1; unknown words map to [UNK].
    Built in memory in milliseconds."""
    vocab = {token: index for index, token in enumerate(vocabulary)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
