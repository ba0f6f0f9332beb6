"""The classification tasks and where their examples come from.

A task names its text columns (two for a pair task, one for a single-sentence task), its label column and its
labels, and the hub dataset holding it or the generator that makes it offline (``synthetic``, ``transfer``).
Examples come from one of three sources, and each ends up as plain columns per split (the texts and an integer
label):

- the hub: ``load_dataset(path, name)``, e.g. ``aps/super_glue`` / ``rte``;
- local files: ``data_dir`` holding ``train``, ``validation`` (or ``val``) and optionally ``test`` as ``.jsonl``,
  ``.json`` or ``.csv`` in the task's schema, read with ``load_dataset("json"|"csv", data_files=...)``;
- a folder written by ``DatasetDict.save_to_disk``, read with ``load_from_disk``.

SuperGLUE hides its test labels, so ``test`` is the source's test split only when every example there has a label;
otherwise the validation split is evaluated as the test split.

Example::

    columns = load_task_columns("rte", data_dir="superglue/RTE")  # train.jsonl, val.jsonl, test.jsonl
    columns["train"]["premise"][0], columns["train"]["label"][0]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftexp.data.generated import GeneratedSplits
from ftexp.data.synthetic import LABEL_NAMES as SYNTHETIC_LABELS
from ftexp.data.synthetic import SyntheticPairs
from ftexp.data.transfer import LABEL_NAMES as TRANSFER_LABELS
from ftexp.data.transfer import HeldOutSentiment
from ftexp.hub import HubUnavailableError, require_hub, unavailable_message

log = logging.getLogger(__name__)

UNLABELED = -1  # how SuperGLUE marks the examples of its hidden test split
# file stems accepted for each split ("val" is what the SuperGLUE download names the validation split)
SPLIT_FILE_STEMS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}
FILE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv"}

Columns = dict[str, list]


@dataclass(frozen=True)
class PairTask:
    """Column names, label names (in label-id order) and the default hub source of a pair task (or of a
    single-sentence task: one text field). A task generated offline has a ``generator`` instead: a
    :class:`~ftexp.data.generated.GeneratedSplits` built from ``data.synthetic`` (split sizes and data seed), whose
    ``split(name)`` returns examples with the task's columns as attributes and whose ``vocabulary()`` gives models
    without a pretrained tokenizer their word-level one."""

    text_fields: tuple[str, ...]
    label_field: str
    label_names: tuple[str, ...]
    hub_path: str | None = None
    hub_name: str | None = None
    generator: type[GeneratedSplits] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.text_fields, self.label_field)


TASKS: dict[str, PairTask] = {
    "synthetic": PairTask(
        ("premise", "hypothesis"),
        "label",
        SYNTHETIC_LABELS,
        generator=SyntheticPairs,
    ),
    "transfer": PairTask(
        ("sentence",),
        "label",
        TRANSFER_LABELS,
        generator=HeldOutSentiment,
    ),
    "rte": PairTask(("premise", "hypothesis"), "label", ("entailment", "not_entailment"), "aps/super_glue", "rte"),
    "boolq": PairTask(("question", "passage"), "label", ("False", "True"), "aps/super_glue", "boolq"),
}
GENERATED_TASKS = tuple(name for name, spec in TASKS.items() if spec.generator is not None)


def load_task_columns(
    task: str, *, dataset_path: str | None = None, dataset_name: str | None = None, data_dir: str | None = None
) -> dict[str, Columns]:
    """The text and label columns of the train, validation and test splits of ``task``, as lists.

    ``data_dir`` (local files or a ``save_to_disk`` folder) wins; otherwise ``load_dataset(dataset_path or the
    task's hub path, dataset_name or the task's hub config)``. A local ``dataset_path`` has no config name unless
    ``dataset_name`` gives one.
    """
    spec = TASKS[task]
    if spec.hub_path is None and dataset_path is None and data_dir is None:
        raise ValueError(f"data.task: {task!r} has no dataset to load; give data.data_dir or data.dataset_path")
    if data_dir is not None:
        dataset, source = load_local_copy(Path(data_dir)), f"data.data_dir={data_dir}"
    else:
        path = dataset_path or spec.hub_path
        name = dataset_name if dataset_name is not None or dataset_path else spec.hub_name
        dataset, source = load_hub_dataset(task, path, name), f"dataset {path!r}"
    return split_columns(dataset, task, source)


def local_copy_hint(task: str) -> str:
    columns = ", ".join(TASKS[task].columns) if task in TASKS else "the task's columns"
    return (
        "Point the config at a local copy instead:\n"
        f"  data.data_dir=/path/to/{task}        train.jsonl, validation.jsonl (or val.jsonl) and optionally "
        f"test.jsonl (.json and .csv work too) with columns {columns}; or a folder written by "
        "DatasetDict.save_to_disk\n"
        "  data.dataset_path=/path/to/folder   a folder of parquet/json/csv files with train and validation splits"
    )


def load_hub_dataset(task: str, path: str, name: str | None) -> Any:
    """``load_dataset(path, name)``; an unreachable hub fails in seconds with instructions for a local copy."""
    import datasets  # heavy, and only needed off the synthetic path

    what = f"dataset {path!r}" + (f" (config {name!r})" if name else "") + f" for task {task!r}"
    hint = local_copy_hint(task)
    require_hub(path, what, hint)
    try:
        return datasets.load_dataset(path, name)
    except (ConnectionError, FileNotFoundError) as err:
        raise HubUnavailableError(unavailable_message(what, str(err), hint)) from err


def load_local_copy(directory: Path) -> Any:
    """A ``save_to_disk`` folder, or the split files of :func:`find_split_files` in one format."""
    import datasets

    if not directory.is_dir():
        raise FileNotFoundError(f"data.data_dir: {directory} is not a directory")
    if (directory / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(directory))
    files = find_split_files(directory)
    formats = {FILE_FORMATS[path.suffix] for path in files.values()}
    if len(formats) > 1:
        names = sorted(path.name for path in files.values())
        raise ValueError(f"data.data_dir={directory}: split files mix formats ({', '.join(names)}); use one format")
    return datasets.load_dataset(formats.pop(), data_files={split: str(path) for split, path in files.items()})


def find_split_files(directory: Path) -> dict[str, Path]:
    """``{split: file}`` for the train, validation and (when present) test files of a local copy."""
    found: dict[str, Path] = {}
    for split, stems in SPLIT_FILE_STEMS.items():
        candidates = [
            directory / f"{stem}{suffix}"
            for stem in stems
            for suffix in FILE_FORMATS
            if (directory / f"{stem}{suffix}").is_file()
        ]
        if len(candidates) > 1:
            names = ", ".join(path.name for path in candidates)
            raise ValueError(f"data.data_dir={directory}: more than one {split} file ({names}); keep one")
        if candidates:
            found[split] = candidates[0]
    missing = [split for split in ("train", "validation") if split not in found]
    if missing:
        present = sorted(path.name for path in directory.iterdir())
        raise FileNotFoundError(
            f"data.data_dir={directory}: no {' and no '.join(missing)} file. Expected train.jsonl and "
            "validation.jsonl (or val.jsonl), optionally test.jsonl (.json and .csv work too), or a folder written "
            f"by DatasetDict.save_to_disk; found: {present or 'nothing'}"
        )
    return found


def split_columns(dataset: Mapping[str, Any], task: str, source: str) -> dict[str, Columns]:
    """Train and validation columns (every example labeled), and test: the source's test split when it is fully
    labeled, else the validation split."""
    missing = [split for split in ("train", "validation") if split not in dataset]
    if missing:
        raise ValueError(f"{source}: no {' and no '.join(missing)} split; it has {sorted(dataset)}")
    spec = TASKS[task]
    columns = {
        split: read_columns(dataset[split], spec, f"{source} ({split} split)") for split in ("train", "validation")
    }
    for split, data in columns.items():
        if UNLABELED in data[spec.label_field]:
            raise ValueError(f"{source} ({split} split): examples without a label ({spec.label_field}={UNLABELED})")
    test = None
    if "test" in dataset and spec.label_field in dataset["test"].column_names:
        test = read_columns(dataset["test"], spec, f"{source} (test split)")
    if test is None or UNLABELED in test[spec.label_field]:
        log.info(f"{source}: the test split is missing or unlabeled; the validation split is evaluated as test")
        test = columns["validation"]
    return {**columns, "test": test}


def read_columns(split: Any, task: PairTask, where: str) -> Columns:
    """The task's text columns and its labels as ids (:data:`UNLABELED` for none) from one split."""
    absent = [column for column in task.columns if column not in split.column_names]
    if absent:
        raise ValueError(
            f"{where}: missing column(s) {', '.join(absent)}; the task needs {', '.join(task.columns)} and the split "
            f"has {', '.join(split.column_names)}"
        )
    columns: Columns = {field: [str(text) for text in split[field]] for field in task.text_fields}
    columns[task.label_field] = [label_id(value, task.label_names, where) for value in split[task.label_field]]
    return columns


def label_id(value: Any, label_names: Sequence[str], where: str) -> int:
    """An integer label from an id, a bool (BoolQ's original files: false/true) or a label name (RTE's original
    files: entailment/not_entailment); ``None``, NaN (an empty CSV cell) and -1 mean unlabeled."""
    if isinstance(value, str):
        text = value.strip().lower()
        by_name = {name.lower(): index for index, name in enumerate(label_names)}
        if text in by_name:
            return by_name[text]
        if text.removeprefix("-").isdigit():
            value = int(text)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNLABELED
    if isinstance(value, int | float) and float(value).is_integer() and UNLABELED <= value < len(label_names):
        return int(value)
    raise ValueError(
        f"{where}: label {value!r} is neither a label id 0..{len(label_names) - 1} nor one of {list(label_names)}"
    )
