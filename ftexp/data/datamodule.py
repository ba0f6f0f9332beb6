"""``PairClassificationDataModule``: sentence-pair classification (RTE-style) from the synthetic task, the hub or a
local copy, and single-sentence classification (the offline transfer task).

Every source ends up as the same thing: per split, one or two text columns and an integer label (see
:mod:`ftexp.data.tasks`), tokenized as a single sentence or a pair and padded per batch to the longest example. A
task with an out-of-distribution test split (the transfer task's ``test_ood``) is tested on two loaders: the test
split first, then the OOD one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ftexp.data.generated import OOD_TEST_SPLIT, word_level_tokenizer
from ftexp.data.tasks import GENERATED_TASKS, TASKS, load_task_columns
from ftexp.hub import HubUnavailableError, require_hub, resolve_pretrained, unavailable_message


class EncodedPairs(Dataset):
    """Tokenized pairs kept as Python lists (unpadded); :class:`PadToLongest` pads each batch."""

    def __init__(self, encodings: Mapping[str, Sequence[Sequence[int]]], labels: Sequence[int]) -> None:
        self.encodings = dict(encodings)
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**{key: values[index] for key, values in self.encodings.items()}, "labels": self.labels[index]}


class PadToLongest:
    """Collate function: right-pad every sequence field to the longest example of the batch."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(example["input_ids"]) for example in examples)
        batch = {}
        for key in examples[0]:
            if key == "labels":
                batch[key] = torch.tensor([example[key] for example in examples])
                continue
            fill = self.pad_token_id if key == "input_ids" else 0
            rows = [list(example[key]) + [fill] * (longest - len(example[key])) for example in examples]
            batch[key] = torch.tensor(rows)
        return batch


class PairClassificationDataModule(pl.LightningDataModule):
    """Train/validation/test loaders for a sentence-pair (or single-sentence) classification task.

    Args:
        task: ``synthetic`` (pairs) or ``transfer`` (single sentences with held-out sentiment words), both generated
            offline; ``rte`` or ``boolq`` (SuperGLUE, from the hub or a local copy).
        tokenizer: a hub id, local directory or ``pkg://<package>/<folder>`` for ``AutoTokenizer`` (the configs
            default it to the model's ``pretrained``, so model and data share one tokenizer); ``None`` builds the
            generated task's own word-level tokenizer (generated tasks only).
        max_seq_length: pairs are truncated to this many tokens (longest segment first).
        synthetic: arguments of a generated task's generator (sizes and data seed):
            :class:`~ftexp.data.synthetic.SyntheticPairs` or :class:`~ftexp.data.transfer.HeldOutSentiment`.
        dataset_path / dataset_name: override the task's ``load_dataset`` arguments, e.g. a local folder of
            parquet/json/csv files.
        data_dir: a local copy, no hub access: ``train``/``validation``/``test`` files (``.jsonl``, ``.json`` or
            ``.csv``) in the task's schema, or a folder written by ``DatasetDict.save_to_disk``.

    Example::

        dm = PairClassificationDataModule(task="synthetic", max_seq_length=32, batch_size=16)
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))  # input_ids, token_type_ids, attention_mask, labels
    """

    def __init__(
        self,
        task: str = "synthetic",
        tokenizer: str | None = None,
        max_seq_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        synthetic: Mapping[str, Any] | None = None,
        dataset_path: str | None = None,
        dataset_name: str | None = None,
        data_dir: str | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"data.task: unknown task {task!r}; known tasks: {', '.join(TASKS)}")
        if task not in GENERATED_TASKS and tokenizer is None:
            raise ValueError(
                f"data.tokenizer: task {task!r} needs a pretrained tokenizer; a model with `pretrained` (e.g. "
                "model=minilm) provides its own, or set data.tokenizer=<hub id or local directory>"
            )
        if synthetic is not None and task not in GENERATED_TASKS:
            raise ValueError(
                f"data.synthetic: only used by the generated tasks ({', '.join(GENERATED_TASKS)}), not by {task!r}"
            )
        self.task_name = task
        self.task = TASKS[task]
        self.tokenizer_source = tokenizer
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.synthetic = self.task.generator(**(synthetic or {})) if self.task.generator is not None else None
        self.dataset_path = dataset_path
        self.dataset_name = dataset_name
        self.data_dir = data_dir
        self.tokenizer = self._build_tokenizer()
        self.datasets: dict[str, EncodedPairs] = {}

    @property
    def num_labels(self) -> int:
        return len(self.task.label_names)

    def _build_tokenizer(self) -> PreTrainedTokenizerBase:
        if self.tokenizer_source is None:  # a generated task (checked in __init__): its own words
            return word_level_tokenizer(self.synthetic.vocabulary(), self.max_seq_length)
        what = f"tokenizer {self.tokenizer_source!r}"
        hint = (
            "Point data.tokenizer at a local directory holding the tokenizer files; the configs default it to "
            "model.pretrained, so a local model.pretrained directory with its tokenizer moves both."
        )
        source = resolve_pretrained(self.tokenizer_source)
        require_hub(source, what, hint)
        try:
            return AutoTokenizer.from_pretrained(source)
        except OSError as err:
            raise HubUnavailableError(unavailable_message(what, str(err), hint)) from err

    def prepare_data(self) -> None:
        if self.synthetic is None and self.data_dir is None:
            self._load_columns()  # download once, on one process; setup() then reads the cache

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        columns = self._load_columns()
        for split, data in columns.items():
            texts = [data[field] for field in self.task.text_fields]  # one column, or a pair
            encodings = self.tokenizer(*texts, truncation="longest_first", max_length=self.max_seq_length)
            fields = {key: encodings[key] for key in self.tokenizer.model_input_names if key in encodings}
            self.datasets[split] = EncodedPairs(fields, [int(label) for label in data[self.task.label_field]])

    def _load_columns(self) -> dict[str, dict[str, list]]:
        """The text and label columns of each split, as lists."""
        if self.synthetic is None:
            return load_task_columns(
                self.task_name, dataset_path=self.dataset_path, dataset_name=self.dataset_name, data_dir=self.data_dir
            )
        columns = self.task.columns
        examples = {split: self.synthetic.split(split) for split in self.synthetic.splits}
        return {
            split: {column: [getattr(example, column) for example in split_examples] for column in columns}
            for split, split_examples in examples.items()
        }

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before the {split} dataloader is requested")
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=PadToLongest(self.tokenizer.pad_token_id),
            # workers start with every iterator, as they do without workers: each iterator draws its base seed from
            # the global generator, the same draws in a resumed process as in the uninterrupted one, and each worker
            # is seeded from it (ftexp.callbacks.random_state says why persistent workers would break a resume)
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """The test split; for a task with an out-of-distribution test split, ``[test, test_ood]`` in that order:
        :class:`~ftexp.models.SequenceClassifier` logs dataloader 0 as ``test_*`` and dataloader 1 as
        ``test_ood_*``. Other tasks keep the single loader, so their metrics and results are as they were."""
        if OOD_TEST_SPLIT not in self.datasets:
            return self._loader("test", self.eval_batch_size, shuffle=False)
        return [self._loader(split, self.eval_batch_size, shuffle=False) for split in ("test", OOD_TEST_SPLIT)]
