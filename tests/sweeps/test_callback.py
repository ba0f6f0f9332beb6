"""The Hydra callback that keeps a sweep's summary current (ftexp/sweeps/callback.py)."""

from __future__ import annotations

import logging

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf

from ftexp.sweeps.callback import _RANK_VARIABLES, SummarizeSweep


def hydra_config(sweep_dir, mode=RunMode.MULTIRUN):
    return OmegaConf.create({"hydra": {"mode": mode, "sweep": {"dir": str(sweep_dir)}}})


@pytest.fixture(autouse=True)
def rank_zero(monkeypatch):
    for variable in _RANK_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_after_each_job_the_tables_are_rewritten_without_plots(fake_sweep):
    SummarizeSweep().on_job_end(hydra_config(fake_sweep), job_return=None)
    assert "| schedule=explicit | 1/2 |" in (fake_sweep / "summary.md").read_text()
    assert (fake_sweep / "summary.csv").is_file() and (fake_sweep / "jobs.csv").is_file()
    assert not (fake_sweep / "plots").exists()


def test_at_the_end_of_the_sweep_the_plots_are_written_and_the_table_printed(fake_sweep, capsys):
    SummarizeSweep().on_multirun_end(hydra_config(fake_sweep))
    assert (fake_sweep / "plots" / "val_curves.png").is_file()
    assert "| schedule=nofts | 2/2 |" in capsys.readouterr().out


def test_a_single_run_and_ranks_other_than_zero_write_nothing(fake_sweep, monkeypatch):
    SummarizeSweep().on_job_end(hydra_config(fake_sweep, RunMode.RUN), job_return=None)
    monkeypatch.setenv("LOCAL_RANK", "1")
    SummarizeSweep().on_job_end(hydra_config(fake_sweep), job_return=None)
    assert not (fake_sweep / "summary.md").exists()


def test_a_problem_is_a_warning_never_an_exception(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="ftexp.sweeps.callback"):
        SummarizeSweep().on_job_end(hydra_config(tmp_path / "nowhere"), job_return=None)
        SummarizeSweep().on_multirun_end(OmegaConf.create({}))
    assert [record.levelname for record in caplog.records] == ["WARNING", "WARNING"]
    assert "could not summarize the sweep" in caplog.records[0].getMessage()
