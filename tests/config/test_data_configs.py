"""The SuperGLUE data options compose with the model's own tokenizer and build from a local copy of the task."""

from __future__ import annotations

import pytest
import torch

from ftexp.config import CONFIG_DIR
from ftexp.train import build
from tests.models.local_copies import (
    SUPERGLUE_ROWS,
    classify_one_batch,
    compose_config,
    local_overrides,
)

pytestmark = pytest.mark.usefixtures("datasets_cache_in_tmp")


def test_the_data_group_has_two_generated_tasks_and_two_superglue_tasks():
    assert {path.stem for path in (CONFIG_DIR / "data").glob("*.yaml")} == {"synthetic", "transfer", "rte", "boolq"}


@pytest.mark.parametrize("data", ["rte", "boolq"])
def test_a_superglue_option_takes_the_model_s_tokenizer_and_reads_the_hub_unless_given_a_local_copy(tmp_path, data):
    cfg = compose_config(tmp_path, "model=roberta_base", f"data={data}")
    assert (cfg.data.task, cfg.data.tokenizer) == (data, "roberta-base")
    assert cfg.data.data_dir is None and cfg.data.dataset_path is None, "the hub dataset aps/super_glue by default"


def test_a_superglue_option_with_the_tiny_model_asks_for_a_pretrained_tokenizer(tmp_path):
    with pytest.raises(Exception, match=r"task 'rte' needs a pretrained tokenizer"):
        build(compose_config(tmp_path, "data=rte"))


@pytest.mark.parametrize("data", ["rte", "boolq"])
def test_a_superglue_option_builds_from_a_local_copy_and_evaluates_validation_as_test(
    tmp_path, stand_ins, superglue, data
):
    cfg = compose_config(tmp_path, "model=bert_base", f"data={data}")
    cfg = compose_config(tmp_path, "model=bert_base", f"data={data}", *local_overrides(cfg, stand_ins, superglue))

    objects = build(cfg)

    assert (objects.datamodule.task_name, objects.datamodule.num_labels) == (data, 2)
    assert torch.isfinite(classify_one_batch(objects))
    labels = [row["label"] for row in SUPERGLUE_ROWS[data]]
    assert objects.datamodule.datasets["test"].labels == objects.datamodule.datasets["validation"].labels == labels
