"""The sweep's figures (ftexp/sweeps/plots.py), checked on the matplotlib objects they draw."""

from __future__ import annotations

import matplotlib.image
import pytest

from ftexp.sweeps.curves import Curves
from ftexp.sweeps.plots import plot_learning_rates, plot_validation_curves, save_figure
from ftexp.sweeps.runs import load_jobs
from ftexp.sweeps.scenarios import group_scenarios
from tests.sweeps.fake_sweeps import result, write_job


@pytest.fixture
def two_scenarios(tmp_path):
    """nofts with 2 seeds (one phase); explicit with 1 seed, phase 1 beginning at epoch 2."""
    write_job(tmp_path, "0", ["schedule=nofts", "seed=1"], result("nofts", 1), num=0)
    write_job(tmp_path, "1", ["schedule=nofts", "seed=2"], result("nofts", 2), num=1)
    write_job(tmp_path, "2", ["schedule=explicit", "seed=1"], result(transitions=[{"depth": 1, "epoch": 2}]), num=2)
    jobs = load_jobs(tmp_path)
    curves = {
        jobs[0].dir: Curves({"val_loss": [(0, 1.0), (1, 0.8)], "val_acc": [(0, 0.5), (1, 0.6)]}),
        jobs[1].dir: Curves({"val_loss": [(0, 0.6), (1, 0.4)], "val_acc": [(0, 0.7), (1, 0.8)]}),
        jobs[2].dir: Curves(
            {
                "val_loss": [(0, 0.9), (1, 0.7), (2, 0.5)],
                "val_acc": [(0, 0.5), (1, 0.6), (2, 0.9)],
                "lr-AdamW/pg2": [(0, 1e-3), (1, 9e-4)],
                "lr-AdamW/pg10": [(0, 1e-3), (1, 9e-4)],
                "phase1_cosine/pg1": [(2, 5e-4)],
            }
        ),
    }
    return group_scenarios(jobs), curves


def solid_lines(ax):
    return [line for line in ax.get_lines() if line.get_linestyle() == "-"]


def phase_lines(ax):
    return [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_validation_curves_show_each_scenario_s_mean_over_seeds_with_a_band(two_scenarios):
    scenarios, curves = two_scenarios
    loss, acc = plot_validation_curves(scenarios, curves).axes
    assert (loss.get_title(), acc.get_title()) == ("val_loss", "val_acc")
    nofts, explicit = solid_lines(loss)
    assert (nofts.get_label(), explicit.get_label()) == ("schedule=nofts", "schedule=explicit")
    assert list(nofts.get_ydata()) == pytest.approx([0.8, 0.6])
    assert list(explicit.get_xdata()) == [0, 1, 2]
    assert len(loss.collections) == 1  # the min-max band of nofts' two seeds; explicit has one seed


def test_a_failed_seed_does_not_move_the_curve_of_its_scenario(two_scenarios, tmp_path):
    scenarios, curves = two_scenarios
    failed = write_job(tmp_path, "3", ["schedule=nofts", "seed=3"], result("nofts", 3, status="failed"), num=3)
    curves[failed] = Curves({"val_loss": [(0, 9.0), (1, 9.0), (2, 9.0)], "finetuning_depth": [(0, 0.0), (1, 1.0)]})
    scenarios = group_scenarios(load_jobs(tmp_path))
    assert [len(s.jobs) for s in scenarios] == [3, 1]
    loss, _ = plot_validation_curves(scenarios, curves).axes
    nofts, _ = solid_lines(loss)
    assert list(nofts.get_xdata()) == [0, 1]
    assert list(nofts.get_ydata()) == pytest.approx([0.8, 0.6])  # the two completed seeds, as without the failed one
    assert phase_lines(loss) == [1.5]  # explicit's phase; not the failed job's


def test_a_scenario_none_of_whose_jobs_completed_is_drawn_from_all_its_jobs(tmp_path):
    for seed, status in ((1, "failed"), (2, "running")):
        write_job(tmp_path, str(seed), ["schedule=nofts", f"seed={seed}"], result("nofts", seed, status), num=seed)
    jobs = load_jobs(tmp_path)
    curves = {jobs[0].dir: Curves({"val_loss": [(0, 1.0)]}), jobs[1].dir: Curves({"val_loss": [(0, 0.6)]})}
    loss, _ = plot_validation_curves(group_scenarios(jobs), curves).axes
    [line] = solid_lines(loss)
    assert list(line.get_ydata()) == pytest.approx([0.8])


def test_the_title_says_which_seeds_a_curve_averages(two_scenarios):
    assert "mean over the completed seeds" in plot_validation_curves(*two_scenarios).get_suptitle()


def test_a_phase_beginning_at_epoch_e_is_marked_between_e_minus_1_and_e(two_scenarios):
    scenarios, curves = two_scenarios
    loss, acc = plot_validation_curves(scenarios, curves).axes
    assert phase_lines(loss) == phase_lines(acc) == [1.5]


def test_learning_rates_have_one_panel_per_scenario_and_a_line_per_parameter_group(two_scenarios):
    scenarios, curves = two_scenarios
    nofts, explicit = (ax for ax in plot_learning_rates(scenarios, curves).axes if ax.get_visible())
    assert (nofts.get_title(), explicit.get_title()) == ("schedule=nofts", "schedule=explicit")
    assert solid_lines(nofts) == []
    assert [text.get_text() for text in nofts.texts] == ["no learning rates logged"]
    assert [t.get_text() for t in explicit.get_legend().get_texts()] == [
        "lr-AdamW/pg2",
        "lr-AdamW/pg10",
        "phase1_cosine/pg1",
    ]
    assert len(solid_lines(explicit)) == 3
    assert explicit.get_yscale() == "log"
    assert phase_lines(explicit) == [1.5]
    # the new phase's scheduler starts where the phase line is: its lr of epoch 2 spans 1.5 to 2.5
    new_scheduler = next(line for line in solid_lines(explicit) if list(line.get_ydata()) == [5e-4, 5e-4])
    assert list(new_scheduler.get_xdata()) == [1.5, 2.5]


def test_figures_are_written_as_png_images(two_scenarios, tmp_path):
    scenarios, curves = two_scenarios
    path = save_figure(plot_validation_curves(scenarios, curves), tmp_path / "plots" / "val_curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(path).shape
    assert width > height > 100
    assert [p.name for p in path.parent.iterdir()] == ["val_curves.png"]  # no temporary file left
