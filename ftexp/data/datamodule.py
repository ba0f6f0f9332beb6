"""``PairClassificationDataModule``: sentence-pair classification (RTE-style) from the synthetic task or the hub.

Every source ends up as the same thing: per split, two text columns and an integer label, tokenized as a pair
and padded per batch to the longest example.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ftexp.data.synthetic import LABEL_NAMES, SPLITS, SyntheticPairs, build_tokenizer
from ftexp.hub import HubUnavailableError, require_hub, unavailable_message


@dataclass(frozen=True)
class PairTask:
    """Where a task's data lives and how its columns are named. ``splits`` maps our split to the source split:
    SuperGLUE hides its test labels, so ``test`` reads the validation split there."""

    text_fields: tuple[str, str]
    label_field: str
    label_names: tuple[str, ...]
    hub_path: str | None = None
    hub_name: str | None = None
    splits: Mapping[str, str] = field(default_factory=lambda: {split: split for split in SPLITS})


TASKS: dict[str, PairTask] = {
    "synthetic": PairTask(("premise", "hypothesis"), "label", LABEL_NAMES),
    "rte": PairTask(
        ("premise", "hypothesis"),
        "label",
        ("entailment", "not_entailment"),
        hub_path="aps/super_glue",
        hub_name="rte",
        splits={"train": "train", "validation": "validation", "test": "validation"},
    ),
    "boolq": PairTask(
        ("question", "passage"),
        "label",
        ("False", "True"),
        hub_path="aps/super_glue",
        hub_name="boolq",
        splits={"train": "train", "validation": "validation", "test": "validation"},
    ),
}


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
    """Train/validation/test loaders for a sentence-pair classification task.

    Args:
        task: ``synthetic`` (generated offline), ``rte`` or ``boolq`` (SuperGLUE, from the hub or a local copy).
        tokenizer: a hub id or local directory for ``AutoTokenizer``; ``None`` builds the synthetic task's own
            word-level tokenizer (synthetic task only).
        max_seq_length: pairs are truncated to this many tokens (longest segment first).
        synthetic: arguments of :class:`~ftexp.data.synthetic.SyntheticPairs` (sizes and data seed).
        dataset_path / dataset_name: override the task's ``load_dataset`` arguments, e.g. a local folder of
            parquet/json/csv files.
        data_dir: a folder written by ``DatasetDict.save_to_disk``; read with ``load_from_disk``, no hub access.

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
        if task != "synthetic" and tokenizer is None:
            raise ValueError(f"data.tokenizer: task {task!r} needs a tokenizer (usually the model's pretrained id)")
        if synthetic is not None and task != "synthetic":
            raise ValueError(f"data.synthetic: only used by the synthetic task, not by {task!r}")
        self.task_name = task
        self.task = TASKS[task]
        self.tokenizer_source = tokenizer
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.synthetic = SyntheticPairs(**(synthetic or {})) if task == "synthetic" else None
        self.dataset_path = dataset_path
        self.dataset_name = dataset_name
        self.data_dir = data_dir
        self.tokenizer = self._build_tokenizer()
        self.datasets: dict[str, EncodedPairs] = {}

    @property
    def num_labels(self) -> int:
        return len(self.task.label_names)

    def _build_tokenizer(self) -> PreTrainedTokenizerBase:
        if self.tokenizer_source is None:
            return build_tokenizer(self.max_seq_length)
        what = f"tokenizer {self.tokenizer_source!r}"
        hint = "Point data.tokenizer at a local directory holding the tokenizer files."
        require_hub(self.tokenizer_source, what, hint)
        try:
            return AutoTokenizer.from_pretrained(self.tokenizer_source)
        except OSError as err:
            raise HubUnavailableError(unavailable_message(what, str(err), hint)) from err

    def prepare_data(self) -> None:
        if self.synthetic is None:
            self._load_columns()  # download once, on one process; setup() then reads the cache

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        columns = self._load_columns()
        first, second = self.task.text_fields
        for split, data in columns.items():
            encodings = self.tokenizer(
                data[first], data[second], truncation="longest_first", max_length=self.max_seq_length
            )
            fields = {key: encodings[key] for key in self.tokenizer.model_input_names if key in encodings}
            self.datasets[split] = EncodedPairs(fields, [int(label) for label in data[self.task.label_field]])

    def _load_columns(self) -> dict[str, dict[str, list]]:
        """The text and label columns of each split, as lists."""
        columns = (*self.task.text_fields, self.task.label_field)
        if self.synthetic is not None:
            examples = {split: self.synthetic.split(split) for split in SPLITS}
            return {
                split: {column: [getattr(example, column) for example in examples[split]] for column in columns}
                for split in SPLITS
            }
        path = self.dataset_path or self.task.hub_path
        # a local dataset_path has no hub config name unless one is given
        name = self.dataset_name if self.dataset_name is not None or self.dataset_path else self.task.hub_name
        dataset = load_hub_dataset(self.task_name, path, name, self.data_dir)
        return {
            ours: {column: list(dataset[theirs][column]) for column in columns}
            for ours, theirs in self.task.splits.items()
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
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


def load_hub_dataset(task: str, path: str | None, name: str | None, data_dir: str | None) -> Any:
    """``load_from_disk(data_dir)`` when given, else ``load_dataset(path, name)``; an unreachable hub fails in
    seconds with instructions for using a local copy."""
    import datasets  # heavy, and only needed off the synthetic path

    if data_dir is not None:
        return datasets.load_from_disk(data_dir)
    if path is None:
        raise ValueError(f"data.dataset_path: task {task!r} has no default source; set data.dataset_path")
    what = f"dataset {path!r}" + (f" (config {name!r})" if name else "") + f" for task {task!r}"
    hint = (
        "Point the config at a local copy instead:\n"
        f"  data.data_dir=/path/to/{task}        a folder written by DatasetDict.save_to_disk\n"
        "  data.dataset_path=/path/to/folder   a folder of parquet/json/csv files with train and validation splits"
    )
    require_hub(path, what, hint)
    try:
        return datasets.load_dataset(path, name)
    except (ConnectionError, FileNotFoundError) as err:
        raise HubUnavailableError(unavailable_message(what, str(err), hint)) from err
