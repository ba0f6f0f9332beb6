"""Differences vs a baseline scenario, paired by seed, with a Student-t interval (ftexp/sweeps/paired.py,
ftexp/sweeps/differences.py), and how they reach summary.md, differences.csv, the command, the callback and the
final-metrics plot."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf

from ftexp.summarize import main
from ftexp.sweeps.callback import _RANK_VARIABLES, SummarizeSweep
from ftexp.sweeps.differences import seed_values, sweep_differences
from ftexp.sweeps.paired import INCLUDES_ZERO, paired_difference, t_critical, t_within
from ftexp.sweeps.plots import plot_final_metrics
from ftexp.sweeps.report import load_sweep, summarize_sweep
from ftexp.sweeps.table import job_rows, markdown_table, scenario_rows
from tests.sweeps.fake_sweeps import result, write_job

T_975_2DF = 4.302652729749464  # Student's t, 97.5 % quantile, 2 degrees of freedom (any statistics table)


def write_sweep(sweep_dir, accuracies, failed=()):
    """One job per scenario and seed: ``accuracies`` maps a scenario's overrides (a tuple) to ``{seed: val_acc}``,
    with val_loss = 1 - val_acc; the (overrides, seed) in ``failed`` failed after logging that accuracy."""
    num = 0
    for overrides, by_seed in accuracies.items():
        schedule = next((o.partition("=")[2] for o in overrides if o.lstrip("+").startswith("schedule=")), "explicit")
        for seed, acc in by_seed.items():
            job = ["+sweep=compare_schedules", *overrides, f"seed={seed}"]
            status = "failed" if (overrides, seed) in failed else "completed"
            payload = result(schedule, seed, status, val_acc=acc, val_loss=1 - acc, overrides=job)
            write_job(sweep_dir, f"{num}_{schedule}", job, payload, num=num)
            num += 1
    return sweep_dir


def differences_of(sweep_dir, selector="schedule=nofts"):
    sweep = load_sweep(sweep_dir)
    return sweep_differences(sweep.scenarios, job_rows(sweep.scenarios, sweep.dir), selector)


def by_metric(differences, metric="best_val_acc"):
    return {row.scenario: row.difference for row in differences.rows if row.metric == metric}


# --- the paired difference and its interval -------------------------------------------------------------------


def test_differences_0_1_0_2_0_3_have_mean_0_2_and_a_t_interval_that_includes_0():
    difference = paired_difference({1: 0.7, 2: 0.8, 3: 0.9}, {1: 0.6, 2: 0.6, 3: 0.6})
    half_width = T_975_2DF * 0.1 / math.sqrt(3)  # sd of 0.1, 0.2, 0.3 is 0.1
    assert difference.seeds == (1, 2, 3)
    assert difference.differences == pytest.approx((0.1, 0.2, 0.3))
    assert difference.mean == pytest.approx(0.2)
    assert (difference.low, difference.high) == pytest.approx((0.2 - half_width, 0.2 + half_width))
    assert difference.low == pytest.approx(-0.0484, abs=1e-4)  # just below 0: 3 seeds this spread prove nothing
    assert difference.includes_zero is True
    assert difference.verdict == INCLUDES_ZERO == "interval includes 0: no evidence of a difference"


def test_an_interval_above_0_says_higher_and_one_below_0_says_lower():
    higher = paired_difference({1: 0.70, 2: 0.71, 3: 0.72}, {1: 0.6, 2: 0.6, 3: 0.6})  # 0.10, 0.11, 0.12
    half_width = T_975_2DF * 0.01 / math.sqrt(3)
    assert (higher.low, higher.high) == pytest.approx((0.11 - half_width, 0.11 + half_width))
    assert higher.includes_zero is False
    assert higher.verdict == "higher than the baseline (interval excludes 0)"
    lower = paired_difference({1: 0.5, 2: 0.5, 3: 0.5}, {1: 0.70, 2: 0.71, 3: 0.72})  # -0.20, -0.21, -0.22
    assert lower.high < 0
    assert lower.verdict == "lower than the baseline (interval excludes 0)"


def test_only_seeds_present_on_both_sides_are_paired():
    difference = paired_difference({1: 0.9, 2: 0.7, 3: 0.8}, {2: 0.5, 3: 0.6, 4: 0.1})
    assert difference.seeds == (2, 3)
    assert difference.differences == pytest.approx((0.2, 0.2))
    assert difference.n == 2


def test_one_pair_has_a_mean_but_no_interval_and_says_so():
    difference = paired_difference({1: 0.9, 2: 0.7}, {1: 0.6})
    assert (difference.n, difference.mean) == (1, pytest.approx(0.3))
    assert (difference.low, difference.high, difference.includes_zero) == (None, None, None)
    assert difference.verdict == "1 pair: no interval (it needs 2 or more)"


def test_no_common_seed_gives_no_mean_and_says_there_is_nothing_to_pair():
    difference = paired_difference({1: 0.9}, {2: 0.6})
    assert (difference.n, difference.mean, difference.low) == (0, None, None)
    assert "nothing to pair" in difference.verdict


@pytest.mark.parametrize(
    ("confidence", "df", "expected"),  # Student's t quantiles from printed tables
    [(0.95, 1, 12.7062), (0.95, 2, 4.3027), (0.95, 4, 2.7764), (0.95, 10, 2.2281), (0.95, 30, 2.0423),
     (0.99, 5, 4.0321), (0.90, 3, 2.3534), (0.95, 1000, 1.9623)],
)  # fmt: skip
def test_the_t_quantile_matches_printed_tables(confidence, df, expected):
    assert t_critical(confidence, df) == pytest.approx(expected, abs=1e-4)
    assert t_within(t_critical(confidence, df), df) == pytest.approx(confidence, abs=1e-12)


def test_the_t_quantile_agrees_with_scipy_where_scipy_is_installed():
    stats = pytest.importorskip("scipy.stats", reason="scipy is no dependency of ftexp; the check needs it")
    for df in [*range(1, 61), 99, 250, 1000]:
        for confidence in (0.8, 0.95, 0.99):
            expected = stats.t.ppf(1 - (1 - confidence) / 2, df)
            assert t_critical(confidence, df) == pytest.approx(expected, rel=1e-10), (confidence, df)


@pytest.mark.parametrize(("confidence", "df"), [(0.95, 0), (0.95, 2.5), (1.0, 3), (0.0, 3)])
def test_a_confidence_outside_0_1_or_a_non_integer_df_is_refused_with_its_value(confidence, df):
    with pytest.raises(ValueError, match=str(df) if df in (0, 2.5) else str(confidence)):
        t_critical(confidence, df)


# --- scenarios against the baseline -----------------------------------------------------------------------------


def test_each_scenario_is_compared_with_nofts_seed_by_seed_and_a_failed_seed_is_left_unpaired(tmp_path):
    sweep_dir = write_sweep(
        tmp_path,
        {
            ("schedule=nofts",): {1: 0.60, 2: 0.62, 3: 0.64},
            ("schedule=explicit",): {1: 0.70, 2: 0.73, 3: 0.76},  # +0.10, +0.11, +0.12
            ("schedule=implicit",): {1: 0.70, 2: 0.82, 3: 0.10},  # seed 3 failed: +0.10, +0.20
        },
        failed={(("schedule=implicit",), 3)},
    )
    differences = differences_of(sweep_dir)
    assert differences.omitted is None
    assert [(row.metric, row.scenario) for row in differences.rows] == [
        ("best_val_acc", "schedule=explicit"),
        ("best_val_acc", "schedule=implicit"),
        ("best_val_loss", "schedule=explicit"),
        ("best_val_loss", "schedule=implicit"),
    ]
    explicit, implicit = by_metric(differences).values()
    assert explicit.mean == pytest.approx(0.11)
    assert explicit.verdict == "higher than the baseline (interval excludes 0)"
    assert implicit.seeds == (1, 2)
    assert implicit.mean == pytest.approx(0.15)
    assert implicit.includes_zero is True  # 0.10 and 0.20: t(1 df) = 12.7 makes the interval wide
    assert by_metric(differences, "best_val_loss")["schedule=explicit"].mean == pytest.approx(-0.11)


def test_without_a_baseline_scenario_there_is_one_line_saying_why(tmp_path):
    sweep_dir = write_sweep(tmp_path, {("lr_reinit=none",): {1: 0.6}, ("lr_reinit=implicit",): {1: 0.7}})
    differences = differences_of(sweep_dir)
    assert differences.rows == []
    assert differences.omitted == "no scenario of the sweep has `schedule=nofts`"
    markdown = summarize_sweep(sweep_dir, out_dir=tmp_path / "out", plots=False).markdown
    assert "## Differences" not in markdown
    assert "No differences vs a baseline: no scenario of the sweep has `schedule=nofts` (`--baseline`" in markdown
    assert (tmp_path / "out" / "differences.csv").read_text().startswith("metric,scenario,baseline,n_pairs,")
    assert len((tmp_path / "out" / "differences.csv").read_text().splitlines()) == 1  # the header only


def test_another_baseline_is_chosen_by_an_override_a_table_label_or_a_bare_schedule_name(tmp_path):
    sweep_dir = write_sweep(
        tmp_path,
        {
            ("schedule=explicit", "lr_reinit=none"): {1: 0.6, 2: 0.6},
            ("schedule=explicit", "lr_reinit=implicit"): {1: 0.7, 2: 0.8},
        },
    )
    by_override = differences_of(sweep_dir, "lr_reinit=none")
    assert [(r.scenario, r.baseline) for r in by_override.rows][:1] == [("lr_reinit=implicit", "lr_reinit=none")]
    assert by_metric(by_override)["lr_reinit=implicit"].mean == pytest.approx(0.15)
    assert differences_of(sweep_dir, "++lr_reinit=none").rows == by_override.rows  # +, ++: the same key
    every = differences_of(sweep_dir, "explicit")  # a bare word is a schedule: both scenarios have it
    assert every.omitted == "every scenario of the sweep has `explicit`: none to compare"
    assert differences_of(sweep_dir, None).omitted == "no baseline chosen"


def test_when_the_sweep_also_varies_the_lr_each_scenario_is_paired_with_the_baseline_at_its_own_lr(tmp_path):
    sweep_dir = write_sweep(
        tmp_path,
        {
            ("schedule=nofts", "model.optimizer.lr=1e-4"): {1: 0.60, 2: 0.60},
            ("schedule=nofts", "model.optimizer.lr=1e-3"): {1: 0.50, 2: 0.50},
            ("schedule=explicit", "model.optimizer.lr=1e-4"): {1: 0.70, 2: 0.70},
            ("schedule=explicit", "model.optimizer.lr=1e-3"): {1: 0.80, 2: 0.80},
            ("schedule=explicit", "model.optimizer.lr=1e-2"): {1: 0.90, 2: 0.90},  # no nofts at 1e-2
        },
    )
    differences = differences_of(sweep_dir)
    assert differences.several_baselines
    pairs = {(r.scenario, r.baseline): r.difference.mean for r in differences.rows if r.metric == "best_val_acc"}
    assert pairs == {
        ("schedule=explicit model.optimizer.lr=1e-4", "schedule=nofts model.optimizer.lr=1e-4"): pytest.approx(0.1),
        ("schedule=explicit model.optimizer.lr=1e-3", "schedule=nofts model.optimizer.lr=1e-3"): pytest.approx(0.3),
    }
    assert differences.notes == [
        "schedule=explicit model.optimizer.lr=1e-2: no baseline scenario with its other overrides"
    ]
    markdown = summarize_sweep(sweep_dir, plots=False).markdown
    row = "| best val acc | schedule=explicit model.optimizer.lr=1e-4 (vs schedule=nofts model.optimizer.lr=1e-4) |"
    assert row in markdown  # several baselines: each row names its own
    assert "Left out:\n\n- schedule=explicit model.optimizer.lr=1e-2: no baseline scenario" in markdown


def test_each_schedule_at_its_own_tuned_lr_is_compared_with_the_one_baseline_and_the_table_shows_the_lrs(tmp_path):
    sweep_dir = write_sweep(
        tmp_path,
        {
            ("schedule=nofts", "model.optimizer.lr=2e-5"): {1: 0.60, 2: 0.62},
            ("schedule=explicit", "model.optimizer.lr=1e-4"): {1: 0.70, 2: 0.72},
        },
    )
    differences = differences_of(sweep_dir)
    [acc] = [row for row in differences.rows if row.metric == "best_val_acc"]
    assert acc.scenario == "schedule=explicit model.optimizer.lr=1e-4"
    assert acc.baseline == "schedule=nofts model.optimizer.lr=2e-5"
    assert acc.difference.mean == pytest.approx(0.1)
    sweep = load_sweep(sweep_dir)
    table = markdown_table(scenario_rows(sweep.scenarios, job_rows(sweep.scenarios, sweep.dir)))
    assert "| schedule=nofts model.optimizer.lr=2e-5 |" in table  # the tuned value, in the scenario's label
    assert "| schedule=explicit model.optimizer.lr=1e-4 |" in table


def test_a_mean_that_rounds_to_0_is_shown_without_a_minus_sign(tmp_path):
    accuracies = {("schedule=nofts",): {1: 0.6, 2: 0.6}, ("schedule=explicit",): {1: 0.5999, 2: 0.6}}
    sweep_dir = write_sweep(tmp_path, accuracies)  # a mean difference of -0.00005
    markdown = summarize_sweep(sweep_dir, plots=False).markdown
    assert "| best val acc | schedule=explicit | +0.000 | [-0.001, +0.001] | 2 (1, 2) | interval includes 0" in markdown


def test_a_seed_completed_twice_in_one_scenario_is_not_paired():
    rows = [
        {"status": "completed", "seed": 1, "best_val_acc": 0.6},
        {"status": "completed", "seed": 1, "best_val_acc": 0.9},
        {"status": "completed", "seed": 2, "best_val_acc": 0.7},
        {"status": "completed", "seed": 3, "best_val_acc": float("nan")},
        {"status": "failed", "seed": 4, "best_val_acc": 0.5},
        {"status": "completed", "seed": None, "best_val_acc": 0.5},
    ]
    assert seed_values(rows, "best_val_acc") == {2: 0.7}


# --- through the summary's entry points ---------------------------------------------------------------------------


@pytest.fixture
def three_seeds(tmp_path):
    return write_sweep(
        tmp_path / "sweep",
        {
            ("schedule=nofts",): {1: 0.6, 2: 0.6, 3: 0.6},
            ("schedule=explicit",): {1: 0.7, 2: 0.8, 3: 0.9},  # +0.1, +0.2, +0.3
            ("schedule=implicit",): {1: 0.70, 2: 0.71, 3: 0.72},  # +0.10, +0.11, +0.12
        },
    )


def test_summary_md_has_a_differences_section_and_differences_csv_the_same_numbers(three_seeds, tmp_path):
    markdown = summarize_sweep(three_seeds, out_dir=tmp_path / "out", plots=False).markdown
    assert "## Differences vs `schedule=nofts`" in markdown
    assert "| metric | scenario | mean diff | 95 % interval | pairs (seeds) | verdict |" in markdown
    assert (
        "| best val acc | schedule=explicit | +0.200 | [-0.048, +0.448] | 3 (1, 2, 3) | "
        "interval includes 0: no evidence of a difference |"
    ) in markdown
    assert "| best val loss | schedule=implicit | -0.1100 | [-0.1348, -0.0852] | 3 (1, 2, 3) | lower than" in markdown
    with (tmp_path / "out" / "differences.csv").open() as file:
        rows = {(row["metric"], row["scenario"]): row for row in csv.DictReader(file)}
    explicit = rows["best_val_acc", "schedule=explicit"]
    assert (explicit["baseline"], explicit["n_pairs"], explicit["seeds"]) == ("schedule=nofts", "3", "1 2 3")
    assert explicit["differences"] == "0.1 0.2 0.3"
    assert float(explicit["ci_low"]) == pytest.approx(0.2 - T_975_2DF * 0.1 / math.sqrt(3))
    assert (explicit["includes_zero"], rows["best_val_acc", "schedule=implicit"]["includes_zero"]) == ("True", "False")


def test_the_command_takes_another_baseline(three_seeds, tmp_path, capsys):
    assert main([str(three_seeds), "--out", str(tmp_path / "out"), "--no-plots", "--baseline", "implicit"]) == 0
    printed = capsys.readouterr().out
    assert "## Differences vs `implicit`" in printed
    assert "| best val acc | schedule=nofts | -0.110 |" in printed
    assert main([str(three_seeds), "--out", str(tmp_path / "out"), "--no-plots", "--baseline", ""]) == 0
    assert "No differences vs a baseline: no baseline chosen" in capsys.readouterr().out


def test_the_callback_takes_another_baseline(three_seeds, monkeypatch):
    for variable in _RANK_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    config = OmegaConf.create({"hydra": {"mode": RunMode.MULTIRUN, "sweep": {"dir": str(three_seeds)}}})
    SummarizeSweep(baseline="schedule=explicit").on_job_end(config, job_return=None)
    assert "## Differences vs `schedule=explicit`" in (three_seeds / "summary.md").read_text()


def test_config_yaml_gives_the_callback_nofts_as_its_baseline():
    from hydra.utils import instantiate

    import ftexp

    config = OmegaConf.load(Path(ftexp.__file__).parent / "conf" / "config.yaml")
    callback = instantiate(config.hydra.callbacks.summarize_sweep)
    assert isinstance(callback, SummarizeSweep)
    assert callback.baseline == "schedule=nofts"


def test_the_final_metrics_plot_shows_every_seed_as_a_point_beside_the_mean(three_seeds):
    sweep = load_sweep(three_seeds)
    figure = plot_final_metrics(sweep.scenarios, job_rows(sweep.scenarios, sweep.dir))
    acc, loss = figure.axes
    assert (acc.get_title(), loss.get_title()) == ("best val acc", "best val loss")
    points = [(line.get_xdata()[0], line.get_ydata()[0]) for line in acc.get_lines()]
    assert len(points) == 9  # 3 scenarios x 3 seeds
    explicit = sorted(y for x, y in points if 0.5 < x < 1.5)
    assert explicit == pytest.approx([0.7, 0.8, 0.9])
    means = [bar.get_segments()[0] for bar in acc.collections]  # one bar per scenario, centred on its place
    assert [(x0 + x1) / 2 for (x0, _), (x1, _) in means] == pytest.approx([0, 1, 2])
    assert [y for (_, y), _ in means] == pytest.approx([0.6, 0.8, 0.71])
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["mean over the seeds", "seed 1", "seed 2", "seed 3"]


def test_the_same_difference_for_every_seed_is_no_evidence_either_way():
    difference = paired_difference({1: 0.5, 2: 0.5, 3: 0.5}, {1: 0.4, 2: 0.4, 3: 0.4})

    assert difference.mean == pytest.approx(0.1) and difference.no_spread
    assert difference.includes_zero is None
    assert difference.verdict == "the same difference for all 3 seeds: no spread, so no interval to judge it by"
