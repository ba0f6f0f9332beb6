"""Fixtures shared by the config tests that need pretrained models or SuperGLUE: local stand-ins, no network."""

from __future__ import annotations

import datasets
import pytest

from tests.models.local_copies import write_stand_in_models, write_superglue_copies


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory) -> dict[str, str]:
    """2-layer models of each pretrained family, saved with save_pretrained (tokenizers included)."""
    return write_stand_in_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def superglue(tmp_path_factory) -> dict[str, str]:
    """Small RTE and BoolQ copies as local .jsonl files in the SuperGLUE schema."""
    return write_superglue_copies(tmp_path_factory.mktemp("superglue"))


@pytest.fixture
def datasets_cache_in_tmp(tmp_path, monkeypatch):
    """Keep `load_dataset`'s cache out of the user's home."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")
