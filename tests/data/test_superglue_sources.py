"""RTE and BoolQ from local copies (the SuperGLUE schema as .jsonl/.csv files, or a save_to_disk folder), and the
hub path failing at once with instructions for a local copy. The tokenizer is the synthetic task's, saved to a local
directory, so nothing is downloaded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
import pytest

from ftexp.data import PairClassificationDataModule, build_tokenizer, load_task_columns
from ftexp.hub import HubUnavailableError

RTE = [
    {"premise": "the red cat sees the bus", "hypothesis": "there is a cat", "label": 0, "idx": 0},
    {"premise": "the old dog finds the drum", "hypothesis": "there are two fruits", "label": 1, "idx": 1},
    {"premise": "the fast car passes the plum", "hypothesis": "there is a vehicle", "label": 0, "idx": 2},
]
BOOLQ = [
    {"question": "is there a horse", "passage": "the quiet horse watches the harp", "label": True, "idx": 0},
    {"question": "is there a lemon", "passage": "the small bike holds the saw", "label": False, "idx": 1},
]


@pytest.fixture(autouse=True)
def datasets_cache_in_tmp(tmp_path, monkeypatch):
    """``load_dataset`` writes its Arrow cache under tmp_path, not the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")


@pytest.fixture
def tokenizer_dir(tmp_path) -> str:
    directory = tmp_path / "tokenizer"
    build_tokenizer(max_length=32).save_pretrained(directory)
    return str(directory)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_rte_from_local_jsonl_files_gives_tokenized_pairs_for_every_split(tmp_path, tokenizer_dir):
    for split in ("train", "validation", "test"):
        write_jsonl(tmp_path / "rte" / f"{split}.jsonl", RTE)
    datamodule = PairClassificationDataModule(task="rte", tokenizer=tokenizer_dir, data_dir=str(tmp_path / "rte"))

    datamodule.prepare_data()
    datamodule.setup("fit")

    assert {split: len(data) for split, data in datamodule.datasets.items()} == {"train": 3, "validation": 3, "test": 3}
    first = datamodule.datasets["train"][0]
    tokens = datamodule.tokenizer.convert_ids_to_tokens(first["input_ids"])
    assert tokens == ["[CLS]", "the", "red", "cat", "sees", "the", "bus", "[SEP]", "there", "is", "a", "cat", "[SEP]"]
    assert [example["labels"] for example in datamodule.datasets["test"]] == [0, 1, 0]
    batch = next(iter(datamodule.val_dataloader()))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert datamodule.num_labels == 2


def test_boolq_in_the_original_superglue_layout_reads_val_jsonl_and_true_false_labels(tmp_path, tokenizer_dir):
    write_jsonl(tmp_path / "BoolQ" / "train.jsonl", BOOLQ)
    write_jsonl(tmp_path / "BoolQ" / "val.jsonl", BOOLQ)
    write_jsonl(tmp_path / "BoolQ" / "test.jsonl", [{k: v for k, v in row.items() if k != "label"} for row in BOOLQ])
    datamodule = PairClassificationDataModule(task="boolq", tokenizer=tokenizer_dir, data_dir=str(tmp_path / "BoolQ"))

    datamodule.setup("fit")

    assert datamodule.datasets["train"].labels == [1, 0]  # label names (False, True): true is 1
    first = datamodule.datasets["train"][0]
    tokens = datamodule.tokenizer.convert_ids_to_tokens(first["input_ids"])
    question = tokens[: tokens.index("[SEP]") + 1]
    assert question == ["[CLS]", "is", "there", "a", "horse", "[SEP]"], "the question is the first segment"
    assert first["token_type_ids"][: len(question)] == [0] * len(question)
    assert datamodule.datasets["test"].labels == [1, 0], "the unlabeled test split is replaced by validation"


@pytest.mark.parametrize("test_file", ["absent", "labels -1 (hidden)"])
def test_without_a_labeled_test_split_the_validation_split_is_evaluated_as_test(tmp_path, test_file):
    write_jsonl(tmp_path / "train.jsonl", RTE)
    write_jsonl(tmp_path / "validation.jsonl", RTE[:2])
    if test_file != "absent":
        write_jsonl(tmp_path / "test.jsonl", [{**row, "label": -1} for row in RTE])

    columns = load_task_columns("rte", data_dir=str(tmp_path))

    assert columns["test"] == columns["validation"]
    assert columns["validation"]["hypothesis"] == ["there is a cat", "there are two fruits"]


def test_csv_files_with_label_names_are_read_like_jsonl_with_ids(tmp_path):
    named = [{**row, "label": ("entailment", "not_entailment")[row["label"]]} for row in RTE]
    write_csv(tmp_path / "csv" / "train.csv", named)
    write_csv(tmp_path / "csv" / "validation.csv", named)
    write_jsonl(tmp_path / "jsonl" / "train.jsonl", RTE)
    write_jsonl(tmp_path / "jsonl" / "validation.jsonl", RTE)

    assert load_task_columns("rte", data_dir=str(tmp_path / "csv")) == load_task_columns(
        "rte", data_dir=str(tmp_path / "jsonl")
    )


def test_a_folder_written_by_save_to_disk_is_read_with_load_from_disk(tmp_path):
    columns = {key: [row[key] for row in RTE] for key in RTE[0]}
    split = datasets.Dataset.from_dict(columns)
    datasets.DatasetDict({"train": split, "validation": split}).save_to_disk(tmp_path / "saved")

    loaded = load_task_columns("rte", data_dir=str(tmp_path / "saved"))

    assert loaded["train"] == {"premise": columns["premise"], "hypothesis": columns["hypothesis"], "label": [0, 1, 0]}


def test_a_local_copy_that_does_not_fit_the_task_is_reported_with_what_was_found(tmp_path):
    write_jsonl(tmp_path / "only_train" / "train.jsonl", RTE)
    with pytest.raises(FileNotFoundError, match=r"no validation file(.|\n)*found: \['train\.jsonl'\]"):
        load_task_columns("rte", data_dir=str(tmp_path / "only_train"))

    write_jsonl(tmp_path / "rte" / "train.jsonl", RTE)
    write_jsonl(tmp_path / "rte" / "validation.jsonl", RTE)
    with pytest.raises(ValueError, match=r"train split\): missing column\(s\) question, passage"):
        load_task_columns("boolq", data_dir=str(tmp_path / "rte"))

    write_jsonl(tmp_path / "bad_label" / "train.jsonl", [{**RTE[0], "label": "maybe"}])
    write_jsonl(tmp_path / "bad_label" / "validation.jsonl", RTE)
    with pytest.raises(ValueError, match=r"label 'maybe' is neither a label id 0\.\.1 nor one of"):
        load_task_columns("rte", data_dir=str(tmp_path / "bad_label"))

    write_jsonl(tmp_path / "unlabeled_train" / "train.jsonl", [{**RTE[0], "label": -1}])
    write_jsonl(tmp_path / "unlabeled_train" / "validation.jsonl", RTE)
    with pytest.raises(ValueError, match=r"train split\): examples without a label"):
        load_task_columns("rte", data_dir=str(tmp_path / "unlabeled_train"))

    write_jsonl(tmp_path / "mixed" / "train.jsonl", RTE)
    write_csv(tmp_path / "mixed" / "validation.csv", RTE)
    with pytest.raises(ValueError, match=r"mix formats \(train\.jsonl, validation\.csv\)"):
        load_task_columns("rte", data_dir=str(tmp_path / "mixed"))


@pytest.mark.parametrize(("task", "columns"), [("rte", "premise, hypothesis, label"), ("boolq", "question, passage")])
def test_the_hub_path_fails_at_once_when_unreachable_and_explains_the_local_layout(
    monkeypatch, tokenizer_dir, task, columns
):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a closed local port: nothing leaves the machine
    datamodule = PairClassificationDataModule(task=task, tokenizer=tokenizer_dir)

    with pytest.raises(HubUnavailableError) as raised:
        datamodule.prepare_data()

    message = str(raised.value)
    assert f"'aps/super_glue' (config '{task}')" in message and "127.0.0.1:9 is unreachable" in message
    assert f"data.data_dir=/path/to/{task}" in message and "train.jsonl, validation.jsonl" in message
    assert columns in message and "HF_HUB_OFFLINE=1" in message
