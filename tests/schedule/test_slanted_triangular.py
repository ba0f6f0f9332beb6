"""Specifications of SlantedTriangularLR, ULMFiT's slanted triangular learning rates (Howard & Ruder 2018, 3.2).

The lr "at step t" is each group's lr after ``t`` calls of ``scheduler.step()``: step 0 is the lr a fresh scheduler
sets, the one the first optimizer step uses.
"""

from __future__ import annotations

import math
import warnings
from itertools import pairwise

import pytest
import torch
from torch import nn

from ftexp.schedule.slanted_triangular import SlantedTriangularLR, total_steps_for

BASE_LR = 0.01
T = 100  # total_steps of the reference schedule: cut_frac 0.1 and ratio 32 put the peak at step 10


def paper_lr(t: int, lr_max: float, total_steps: int = T, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """The paper's formula, written out independently of the scheduler (with p clamped at 0 past the decay)."""
    cut = math.floor(total_steps * cut_frac)
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return lr_max * (1 + max(p, 0.0) * (ratio - 1)) / ratio


def sgd(*lrs: float) -> torch.optim.SGD:
    """SGD over a tiny Linear, one group per lr: the weight in the first, the bias in the second."""
    layer = nn.Linear(3, 2)
    params = [layer.weight, layer.bias]
    return torch.optim.SGD([{"params": [params[i]], "lr": lr} for i, lr in enumerate(lrs)])


def step(optimizer: torch.optim.Optimizer, scheduler: SlantedTriangularLR, times: int = 1) -> None:
    """Advance the schedule as training does: an optimizer step, then a scheduler step."""
    for _ in range(times):
        optimizer.step()
        scheduler.step()


def lrs_of(optimizer: torch.optim.Optimizer) -> list[float]:
    return [group["lr"] for group in optimizer.param_groups]


def schedule(total_steps: int = T, until: int = T, lr: float = BASE_LR, **kwargs) -> list[float]:
    """The single group's lr at steps 0..until of a fresh scheduler."""
    optimizer = sgd(lr)
    scheduler = SlantedTriangularLR(optimizer, total_steps=total_steps, **kwargs)
    values = [optimizer.param_groups[0]["lr"]]
    for _ in range(until):
        step(optimizer, scheduler)
        values.append(optimizer.param_groups[0]["lr"])
    return values


# --- the shape of the reference schedule: base lr 0.01, 100 steps, cut_frac 0.1, ratio 32 ---


def test_starts_at_lr_max_over_ratio():
    assert schedule(until=0)[0] == pytest.approx(0.01 / 32, rel=1e-12)


def test_peaks_at_lr_max_at_the_cut():
    lrs = schedule()
    assert lrs[10] == pytest.approx(0.01, rel=1e-12)
    assert max(lrs) == pytest.approx(0.01, rel=1e-12)
    assert lrs.index(max(lrs)) == 10


def test_ends_at_lr_max_over_ratio():
    assert schedule()[100] == pytest.approx(0.01 / 32, rel=1e-12)


def test_step_55_is_halfway_down():
    """Halfway through the decay (45 of its 90 steps) p = 0.5: lr = 0.01 * (1 + 0.5 * 31) / 32 = 0.00515625."""
    lr_55 = schedule()[55]
    assert lr_55 == pytest.approx(paper_lr(55, 0.01), rel=1e-12)
    assert lr_55 == pytest.approx(0.00515625, rel=1e-12)
    assert lr_55 == pytest.approx((0.01 + 0.01 / 32) / 2, rel=1e-12)  # midway between peak and floor


def test_hand_computed_warm_up_values():
    """Step 1: p = 1/10, lr = 0.01 * 4.1 / 32 = 0.00128125; step 5: p = 0.5, the same lr as step 55."""
    lrs = schedule(until=5)
    assert lrs[1] == pytest.approx(0.00128125, rel=1e-12)
    assert lrs[5] == pytest.approx(0.00515625, rel=1e-12)


def test_every_step_follows_the_paper():
    lrs = schedule()
    assert lrs == pytest.approx([paper_lr(t, 0.01) for t in range(T + 1)], rel=1e-12)


def test_rises_strictly_up_to_the_cut_then_falls_strictly():
    lrs = schedule()
    assert all(a < b for a, b in pairwise(lrs[:11]))
    assert all(a > b for a, b in pairwise(lrs[10:101]))


def test_steps_past_total_steps_stay_at_the_floor():
    lrs = schedule(until=130)
    assert lrs[100:] == pytest.approx([0.01 / 32] * 31, rel=1e-12)


def test_never_negative_when_total_steps_times_cut_frac_is_fractional():
    """105 * 0.1 = 10.5: cut = 10 and the paper's decay lasts 10 * 9 = 90 steps, reaching the floor at step 100
    (five steps early); the lr then stays there instead of going on down below it."""
    lrs = schedule(total_steps=105, until=120)
    assert lrs[10] == pytest.approx(0.01, rel=1e-12)
    assert lrs[100:] == pytest.approx([0.01 / 32] * 21, rel=1e-12)
    assert min(lrs) > 0


def test_cut_forgives_float_rounding():
    """100 * 0.29 is 28.999999999999996 in floats; the warm-up is still floor(29) = 29 steps."""
    lrs = schedule(cut_frac=0.29)
    assert lrs.index(max(lrs)) == 29


def test_ratio_one_keeps_the_lr_constant():
    assert schedule(ratio=1.0) == pytest.approx([0.01] * (T + 1), rel=1e-12)


def test_other_cut_frac_and_ratio():
    lrs = schedule(total_steps=40, cut_frac=0.25, ratio=10.0, until=40)
    assert lrs == pytest.approx([paper_lr(t, 0.01, 40, 0.25, 10.0) for t in range(41)], rel=1e-12)
    assert lrs[0] == pytest.approx(0.001, rel=1e-12)
    assert lrs[10] == pytest.approx(0.01, rel=1e-12)


# --- discriminative lrs: each group's lr_max is its own base lr ---


def test_two_groups_keep_their_ratio_at_every_step():
    optimizer = sgd(0.01, 0.004)
    scheduler = SlantedTriangularLR(optimizer, total_steps=T)
    for t in range(T + 1):
        high, low = lrs_of(optimizer)
        assert high / low == pytest.approx(2.5, rel=1e-12), f"step {t}"
        assert low == pytest.approx(paper_lr(t, 0.004), rel=1e-12), f"step {t}"
        step(optimizer, scheduler)


def test_get_last_lr_reports_the_groups_lrs():
    optimizer = sgd(0.01, 0.004)
    scheduler = SlantedTriangularLR(optimizer, total_steps=T)
    step(optimizer, scheduler, 10)
    assert scheduler.get_last_lr() == pytest.approx([0.01, 0.004], rel=1e-12)
    assert scheduler.get_last_lr() == lrs_of(optimizer)


# --- resuming ---


def test_state_dict_round_trip_resumes_the_same_lrs():
    optimizer = sgd(0.01, 0.004)
    scheduler = SlantedTriangularLR(optimizer, total_steps=T)
    step(optimizer, scheduler, 37)
    saved_optimizer, saved_scheduler = optimizer.state_dict(), scheduler.state_dict()
    expected = []
    for _ in range(30):
        step(optimizer, scheduler)
        expected.append(lrs_of(optimizer))

    # a fresh pair built with other settings, as a resumed run builds it before loading the checkpoint
    resumed_optimizer = sgd(0.5, 0.5)
    resumed = SlantedTriangularLR(resumed_optimizer, total_steps=10, cut_frac=0.5, ratio=2.0)
    resumed_optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_scheduler)
    assert (resumed.last_epoch, resumed.total_steps, resumed.cut, resumed.ratio) == (37, T, 10, 32.0)
    assert resumed.get_last_lr() == pytest.approx([paper_lr(37, 0.01), paper_lr(37, 0.004)], rel=1e-12)
    actual = []
    for _ in range(30):
        step(resumed_optimizer, resumed)
        actual.append(lrs_of(resumed_optimizer))
    assert actual == expected


# --- groups added after construction (a fine-tuning phase thawing layers) ---


def test_group_added_later_follows_the_same_factor():
    layer = nn.Linear(3, 2)
    optimizer = torch.optim.SGD([{"params": [layer.weight], "lr": 0.01}])
    scheduler = SlantedTriangularLR(optimizer, total_steps=T)
    step(optimizer, scheduler, 3)

    optimizer.add_param_group({"params": [layer.bias], "lr": 0.004, "initial_lr": 0.004})
    scheduler.base_lrs.append(0.004)  # what ftexp's engine does for every group a phase adds
    step(optimizer, scheduler)

    old, new = lrs_of(optimizer)
    factor = old / 0.01
    assert factor == pytest.approx(paper_lr(4, 1.0), rel=1e-12)
    assert new == pytest.approx(0.004 * factor, rel=1e-12)
    assert scheduler.get_last_lr() == [old, new]
    step(optimizer, scheduler, 20)  # and on through the peak and into the decay
    assert lrs_of(optimizer) == pytest.approx([paper_lr(24, 0.01), paper_lr(24, 0.004)], rel=1e-12)


# --- total_steps from a run ---


def test_total_steps_for_multiplies_epochs_by_optimizer_steps():
    assert total_steps_for(epochs=4, steps_per_epoch=25) == 100
    assert total_steps_for(1, 1) == 1


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"epochs": 0, "steps_per_epoch": 10}, "epochs"),
        ({"epochs": 2.0, "steps_per_epoch": 10}, "epochs"),
        ({"epochs": 3, "steps_per_epoch": -1}, "steps_per_epoch"),
        ({"epochs": 3, "steps_per_epoch": True}, "steps_per_epoch"),
    ],
)
def test_total_steps_for_refuses_bad_counts(kwargs, argument):
    bad = kwargs[argument]
    with pytest.raises(ValueError, match=rf"^{argument} must be an int >= 1, got {bad!r}"):
        total_steps_for(**kwargs)


# --- refused settings: each error names the argument and the value ---


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total_steps": 0}, r"total_steps must be an int >= 1, got 0"),
        ({"total_steps": -5}, r"total_steps must be an int >= 1, got -5"),
        ({"total_steps": 100.0}, r"total_steps must be an int >= 1, got 100\.0 \(float\)"),
        ({"total_steps": float("inf")}, r"total_steps must be an int >= 1, got inf \(float\)"),
        ({"total_steps": True}, r"total_steps must be an int >= 1, got True \(bool\)"),
        ({"total_steps": "100"}, r"total_steps must be an int >= 1, got '100' \(str\)"),
        ({"total_steps": T, "cut_frac": 0.0}, r"cut_frac must be a number strictly between 0 and 1, got 0\.0"),
        ({"total_steps": T, "cut_frac": 1.0}, r"cut_frac must be a number strictly between 0 and 1, got 1\.0"),
        ({"total_steps": T, "cut_frac": -0.1}, r"cut_frac must be a number strictly between 0 and 1, got -0\.1"),
        ({"total_steps": T, "cut_frac": 1.5}, r"cut_frac must be a number strictly between 0 and 1, got 1\.5"),
        ({"total_steps": T, "cut_frac": math.nan}, r"cut_frac must be a number strictly between 0 and 1, got nan"),
        ({"total_steps": T, "ratio": 0.5}, r"ratio must be a finite number >= 1, got 0\.5"),
        ({"total_steps": T, "ratio": 0}, r"ratio must be a finite number >= 1, got 0"),
        ({"total_steps": T, "ratio": -32.0}, r"ratio must be a finite number >= 1, got -32\.0"),
        ({"total_steps": T, "ratio": math.inf}, r"ratio must be a finite number >= 1, got inf"),
        ({"total_steps": T, "ratio": math.nan}, r"ratio must be a finite number >= 1, got nan"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message}"):
        SlantedTriangularLR(sgd(BASE_LR), **kwargs)


@pytest.mark.parametrize(
    ("total_steps", "cut_frac", "minimum"),
    [(9, 0.1, 10), (1, 0.1, 10), (3, 0.3, 4), (2, 0.25, 4), (99, 0.01, 100)],
)
def test_a_run_too_short_for_a_warm_up_warms_up_for_one_step_and_says_how_long_a_run_needs_to_be(
    total_steps, cut_frac, minimum
):
    expected = (
        rf"total_steps={total_steps} with cut_frac={cut_frac} gives floor\({total_steps} \* {cut_frac}\) = 0 "
        rf"warm-up steps; warming up for one step instead \(total_steps must be at least {minimum} "
    )
    with pytest.warns(UserWarning, match=expected):
        short = SlantedTriangularLR(sgd(BASE_LR), total_steps=total_steps, cut_frac=cut_frac)
    assert short.cut == 1 and short.factor(1) == 1.0, "the peak after one step"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SlantedTriangularLR(sgd(BASE_LR), total_steps=minimum, cut_frac=cut_frac)  # the number it names is enough


def test_the_smallest_schedule_warms_up_for_one_step():
    """total_steps=10 at cut_frac 0.1: one warm-up step, then the decay of 9 steps back to the floor."""
    lrs = schedule(total_steps=10, until=12)
    assert lrs[0] == pytest.approx(0.01 / 32, rel=1e-12)
    assert lrs[1] == pytest.approx(0.01, rel=1e-12)
    assert lrs[10:] == pytest.approx([0.01 / 32] * 3, rel=1e-12)
