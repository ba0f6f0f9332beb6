"""The sweep's figures (ftexp/sweeps/plots.py), checked on the matplotlib objects they draw."""

from __future__ import annotations

import matplotlib.image
import pytest

from ftexp.record import RunRecord
from ftexp.sweeps.curves import Curves
from ftexp.sweeps.plots import (
    PhaseMark,
    group_labels,
    lr_lines,
    phase_marks,
    plot_learning_rates,
    plot_validation_curves,
    save_figure,
)
from ftexp.sweeps.runs import load_jobs
from ftexp.sweeps.scenarios import group_scenarios
from tests.sweeps.fake_sweeps import result, write_job

# the optimizer of the tiny model's explicit schedule after phase 2, as result.json records it: phase 0 (classifier
# and pooler), phase 1 (layer 1) and phase 2 (layer 0 and the embeddings), each in a decay and a no-decay group
PARAM_GROUPS = [
    {"phase": 0, "weight_decay": 0.01, "tensors": 2, "modules": ["model.bert.pooler", "model.classifier"]},
    {"phase": 0, "weight_decay": 0.0, "tensors": 2, "modules": ["model.bert.pooler", "model.classifier"]},
    {"phase": 1, "weight_decay": 0.01, "tensors": 6, "modules": ["model.bert.encoder.layer.1"]},
    {"phase": 1, "weight_decay": 0.0, "tensors": 10, "modules": ["model.bert.encoder.layer.1"]},
    {
        "phase": 2,
        "weight_decay": 0.01,
        "tensors": 9,
        "modules": ["model.bert.encoder.layer.0", "model.bert.embeddings"],
    },
    {
        "phase": 2,
        "weight_decay": 0.0,
        "tensors": 12,
        "modules": ["model.bert.encoder.layer.0", "model.bert.embeddings"],
    },
]
EXPLICIT = {"reached_depth": 2, "final_depth": 2, "param_groups": PARAM_GROUPS}


@pytest.fixture
def two_scenarios(tmp_path):
    """nofts with 2 seeds (one phase); explicit with 1 seed, phase 1 beginning at epoch 2, whose lrs are logged
    under the optimizer's name, then, from epoch 2, under a new scheduler's."""
    write_job(tmp_path, "0", ["schedule=nofts", "seed=1"], result("nofts", 1), num=0)
    write_job(tmp_path, "1", ["schedule=nofts", "seed=2"], result("nofts", 2), num=1)
    explicit = result(transitions=[{"depth": 1, "epoch": 2}], **EXPLICIT)
    write_job(tmp_path, "2", ["schedule=explicit", "seed=1"], explicit, num=2)
    jobs = load_jobs(tmp_path)
    curves = {
        jobs[0].dir: Curves({"val_loss": [(0, 1.0), (1, 0.8)], "val_acc": [(0, 0.5), (1, 0.6)]}),
        jobs[1].dir: Curves({"val_loss": [(0, 0.6), (1, 0.4)], "val_acc": [(0, 0.7), (1, 0.8)]}),
        jobs[2].dir: Curves(
            {
                "val_loss": [(0, 0.9), (1, 0.7), (2, 0.5)],
                "val_acc": [(0, 0.5), (1, 0.6), (2, 0.9)],
                "lr-AdamW/pg1": [(0, 1e-3), (1, 9e-4)],
                "lr-AdamW/pg2": [(0, 1e-3), (1, 9e-4)],
                "phase1_cosine/pg1": [(2, 5e-4)],
                "phase1_cosine/pg2": [(2, 5e-4)],
                "phase1_cosine/pg3": [(2, 5e-4)],
                "phase1_cosine/pg4": [(2, 2e-4)],
            }
        ),
    }
    return group_scenarios(jobs), curves


def seeds_of(tmp_path, starts, lrs=None, epochs=None):
    """A scenario of one seed per entry of ``starts`` (the epoch its phase 1 began, or None: never), with a val_loss
    per epoch (``epochs[i]`` of them, default 4) and the lrs ``lrs[i]`` (LearningRateMonitor tag -> points)."""
    jobs_curves = []
    for seed, start in enumerate(starts, start=1):
        transitions = [{"depth": 1, "epoch": start}] if start is not None else []
        payload = result(seed=seed, transitions=transitions, **EXPLICIT)
        job_dir = write_job(tmp_path, str(seed), ["schedule=explicit", f"seed={seed}"], payload, num=seed)
        n = epochs[seed - 1] if epochs else 4
        scalars = {"val_loss": [(epoch, 1.0 - 0.1 * epoch + 0.01 * seed) for epoch in range(n)]}
        jobs_curves.append((job_dir, Curves({**scalars, **(lrs[seed - 1] if lrs else {})})))
    return group_scenarios(load_jobs(tmp_path)), dict(jobs_curves)


def mean_lines(ax):
    """The lines with a label of their own: one per scenario or parameter group (the faint seeds have none)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def scenario_lines(ax):
    return [line for line in ax.get_lines() if line.get_linestyle() == "-" and line.get_marker() in ("None", None)]


def phase_lines(ax):
    return [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]


def legend_texts(legend):
    return [text.get_text() for text in legend.get_texts()]


def test_validation_curves_show_each_scenario_s_mean_over_seeds_with_a_band(two_scenarios):
    scenarios, curves = two_scenarios
    figure = plot_validation_curves(scenarios, curves)
    loss, acc = figure.axes
    assert (loss.get_title(), acc.get_title()) == ("val_loss", "val_acc")
    nofts, explicit = scenario_lines(loss)
    assert list(nofts.get_ydata()) == pytest.approx([0.8, 0.6])
    assert list(explicit.get_xdata()) == [0, 1, 2]
    assert len(loss.collections) == 1  # the min-max band of nofts' two seeds; explicit has one seed
    [legend] = figure.legends
    assert legend_texts(legend)[:2] == [
        "schedule=nofts (2 seeds)",
        "schedule=explicit (1 seed): phase 1 at epoch 2",
    ]


def test_a_failed_seed_does_not_move_the_curve_of_its_scenario(two_scenarios, tmp_path):
    scenarios, curves = two_scenarios
    failed = write_job(tmp_path, "3", ["schedule=nofts", "seed=3"], result("nofts", 3, status="failed"), num=3)
    curves[failed] = Curves({"val_loss": [(0, 9.0), (1, 9.0), (2, 9.0)], "finetuning_depth": [(0, 0.0), (1, 1.0)]})
    scenarios = group_scenarios(load_jobs(tmp_path))
    assert [len(s.jobs) for s in scenarios] == [3, 1]
    loss, _ = plot_validation_curves(scenarios, curves).axes
    nofts, _ = scenario_lines(loss)
    assert list(nofts.get_xdata()) == [0, 1]
    assert list(nofts.get_ydata()) == pytest.approx([0.8, 0.6])  # the two completed seeds, as without the failed one
    assert phase_lines(loss) == [1.5]  # explicit's phase; not the failed job's


def test_a_scenario_none_of_whose_jobs_completed_is_drawn_from_all_its_jobs(tmp_path):
    for seed, status in ((1, "failed"), (2, "running")):
        write_job(tmp_path, str(seed), ["schedule=nofts", f"seed={seed}"], result("nofts", seed, status), num=seed)
    jobs = load_jobs(tmp_path)
    curves = {jobs[0].dir: Curves({"val_loss": [(0, 1.0)]}), jobs[1].dir: Curves({"val_loss": [(0, 0.6)]})}
    loss, _ = plot_validation_curves(group_scenarios(jobs), curves).axes
    [line] = scenario_lines(loss)
    assert list(line.get_ydata()) == pytest.approx([0.8])


def test_the_title_says_which_seeds_a_curve_averages(two_scenarios):
    assert "mean over each scenario's completed seeds" in plot_validation_curves(*two_scenarios).get_suptitle()


def test_a_phase_beginning_at_epoch_e_is_marked_between_e_minus_1_and_e(two_scenarios):
    scenarios, curves = two_scenarios
    loss, acc = plot_validation_curves(scenarios, curves).axes
    assert phase_lines(loss) == phase_lines(acc) == [1.5]
    assert [text.get_text() for text in loss.texts] == ["1"]  # numbered by the phase


def test_seeds_beginning_a_phase_at_different_epochs_get_one_line_at_the_median_labelled_with_the_range(tmp_path):
    scenarios, curves = seeds_of(tmp_path, starts=[4, 5, 6, None])
    [mark] = phase_marks(next(iter(scenarios)).completed, curves)
    assert mark == PhaseMark(depth=1, epoch=5, first=4, last=6, reached=3, seeds=4)
    assert mark.describe() == "phase 1 at epoch 5 (median of 3 of 4 seeds; range 4-6)"
    figure = plot_validation_curves(scenarios, curves)
    assert phase_lines(figure.axes[0]) == [4.5]
    assert "schedule=explicit (4 seeds): phase 1 at epoch 5 (median of 3 of 4 seeds; range 4-6)" in legend_texts(
        figure.legends[0]
    )


@pytest.mark.parametrize(
    ("mark", "text"),
    [
        (PhaseMark(2, 6, 6, 6, 3, 3), "phase 2 at epoch 6 (3 seeds)"),
        (PhaseMark(2, 6, 6, 6, 1, 1), "phase 2 at epoch 6"),
        (PhaseMark(3, 9, 9, 9, 1, 3), "phase 3 at epoch 9 (1 of 3 seeds)"),
        (PhaseMark(1, 4.5, 4, 5, 2, 2), "phase 1 at epoch 4.5 (median of 2 seeds; range 4-5)"),
    ],
)
def test_a_phase_start_says_over_how_many_seeds_it_is(mark, text):
    assert mark.describe() == text


def test_where_fewer_seeds_are_averaged_the_markers_are_hollow_and_the_new_count_is_noted(tmp_path):
    scenarios, curves = seeds_of(tmp_path, starts=[None, None, None], epochs=[4, 4, 3])
    figure = plot_validation_curves(scenarios, curves)
    loss = figure.axes[0]
    [mean] = scenario_lines(loss)
    assert list(mean.get_xdata()) == [0, 1, 2, 3]
    hollow = [line for line in loss.get_lines() if line.get_markerfacecolor() == "none"]
    assert [list(line.get_xdata()) for line in hollow] == [[3]]  # only epoch 3 is a mean of two seeds
    assert [(text.get_text(), text.xy[0]) for text in loss.texts] == [("n=2", 3)]
    assert any(text.startswith("mean of fewer seeds (n=k") for text in legend_texts(figure.legends[0]))


def test_learning_rates_have_one_panel_per_scenario_and_a_line_per_parameter_group_named_by_what_it_holds(
    two_scenarios,
):
    scenarios, curves = two_scenarios
    nofts, explicit = (ax for ax in plot_learning_rates(scenarios, curves).axes if ax.get_visible())
    assert (nofts.get_title(), explicit.get_title()) == ("schedule=nofts (2 seeds)", "schedule=explicit (1 seed)")
    assert mean_lines(nofts) == []
    assert [text.get_text() for text in nofts.texts] == ["no learning rates logged"]
    # groups 1 and 2 (phase 0) always share their lr: one line; groups 3 and 4 (phase 1) differ: the no-decay one
    # dashed; one series per group although the new scheduler logs under another name from epoch 2
    assert legend_texts(explicit.get_legend()) == [
        "phase 0: bert.pooler, classifier (decay & no decay)",
        "phase 1: bert.encoder.layer.1 (decay)",
        "phase 1: bert.encoder.layer.1 (no decay)",
        "phase 1 at epoch 2",
    ]
    phase0, phase1_decay, phase1_no_decay = mean_lines(explicit)
    assert list(phase0.get_xdata()) == [-0.5, 0.5, 0.5, 1.5, 1.5, 2.5]
    assert list(phase0.get_ydata()) == pytest.approx([1e-3, 1e-3, 9e-4, 9e-4, 5e-4, 5e-4])
    assert (phase1_decay.get_linestyle(), phase1_no_decay.get_linestyle()) == ("-", "--")
    assert phase1_decay.get_color() == phase1_no_decay.get_color() != phase0.get_color()
    # the new phase's lrs start where the phase line is: the lr of epoch 2 spans 1.5 to 2.5
    assert list(phase1_decay.get_xdata()) == [1.5, 2.5]
    assert phase_lines(explicit) == [1.5]
    assert explicit.get_yscale() == "log"


def test_lines_that_coincide_are_each_drawn_narrower_than_the_one_before(two_scenarios):
    scenarios, curves = two_scenarios
    explicit = plot_learning_rates(scenarios, curves).axes[1]
    widths = [line.get_linewidth() for line in mean_lines(explicit)]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == len(widths)


def test_each_seed_is_a_faint_line_and_their_mean_a_bold_one_as_the_title_says(tmp_path):
    lrs = [{"lr-AdamW/pg1": [(0, 1e-3), (1, 8e-4)]}, {"lr-AdamW/pg1": [(0, 1e-3), (1, 6e-4)]}]
    scenarios, curves = seeds_of(tmp_path, starts=[None, None], lrs=lrs)
    figure = plot_learning_rates(scenarios, curves)
    ax = figure.axes[0]
    [mean] = mean_lines(ax)
    faint = [line for line in ax.get_lines() if line.get_label().startswith("_") and line.get_linestyle() == "-"]
    assert [list(line.get_ydata()) for line in faint] == [[1e-3, 1e-3, 8e-4, 8e-4], [1e-3, 1e-3, 6e-4, 6e-4]]
    assert list(mean.get_ydata()) == pytest.approx([1e-3, 1e-3, 7e-4, 7e-4])
    assert all(line.get_alpha() < 0.5 and line.get_linewidth() < mean.get_linewidth() for line in faint)
    assert "bold: mean over the scenario's completed seeds" in figure.get_suptitle()
    assert "faint: each seed" in figure.get_suptitle()


def test_groups_are_labelled_by_their_phase_and_modules_and_older_files_by_their_number(tmp_path):
    labels = group_labels(RunRecord.from_dict(result(**EXPLICIT)))
    assert [label.text() for label in labels.values()] == [
        "phase 0: bert.pooler, classifier (decay)",
        "phase 0: bert.pooler, classifier (no decay)",
        "phase 1: bert.encoder.layer.1 (decay)",
        "phase 1: bert.encoder.layer.1 (no decay)",
        "phase 2: bert.encoder.layer.0, bert.embeddings (decay)",
        "phase 2: bert.encoder.layer.0, bert.embeddings (no decay)",
    ]
    assert group_labels(RunRecord.from_dict(result())) == {}  # written before param_groups was recorded
    write_job(tmp_path, "0", ["schedule=explicit"], result())
    [job] = load_jobs(tmp_path)
    curves = {job.dir: Curves({"lr-AdamW/pg1": [(0, 1e-3)], "lr-AdamW/pg2": [(0, 5e-4)]})}
    assert [line.label for line in lr_lines(next(iter(group_scenarios([job]))), curves)] == ["group 1", "group 2"]


def test_a_run_training_every_parameter_says_so_and_empty_groups_get_no_line():
    nofts = result(
        "nofts",
        total_params=100,
        trainable_params_per_phase={"0": 100},
        param_groups=[
            {"phase": 0, "weight_decay": 0.01, "tensors": 30, "modules": ["model"]},
            {"phase": 0, "weight_decay": 0.0, "tensors": 11, "modules": ["model"]},
        ],
    )
    assert [label.text() for label in group_labels(RunRecord.from_dict(nofts)).values()] == [
        "all parameters (decay)",
        "all parameters (no decay)",
    ]
    only_biases = [
        {"phase": 1, "weight_decay": 0.01, "tensors": 0, "modules": []},
        {"phase": 1, "weight_decay": 0.0, "tensors": 2, "modules": ["model.head.bias", "model.body.bias"]},
        {"phase": 2, "weight_decay": 0.01, "tensors": 5, "modules": [f"model.block{i}" for i in range(5)]},
    ]
    labels = group_labels(RunRecord.from_dict(result(param_groups=only_biases)))
    assert {group: label.text() for group, label in labels.items()} == {
        "pg2": "phase 1: head.bias, body.bias (no decay)",
        "pg3": "phase 2: block0, block1 +3 more (decay)",
    }


def test_figures_are_written_as_png_images(two_scenarios, tmp_path):
    scenarios, curves = two_scenarios
    path = save_figure(plot_validation_curves(scenarios, curves), tmp_path / "plots" / "val_curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(path).shape
    assert width > height > 100
    assert [p.name for p in path.parent.iterdir()] == ["val_curves.png"]  # no temporary file left
