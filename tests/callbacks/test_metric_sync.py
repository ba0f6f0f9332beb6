"""In a distributed fit, the engine stops at the first validation whose monitored metric differs between ranks, with
a message naming the metric, its users, each rank's value and how to log it synchronized.

These tests stand in a two-rank trainer whose ``all_gather`` returns this rank's values next to another rank's;
the real two-process check runs in tests/callbacks/test_ddp.py (the ``unsynced`` variant) and the runs of
tests/test_ddp_runs.py.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.trainer.states import TrainerFn

from ftexp import PhaseCheckpoint, PhaseEarlyStopping
from ftexp.callbacks.metric_sync import UnsyncedMetricError, all_equal, check_monitored_metrics_synced


def two_rank_trainer(mine: dict[str, float], other_rank: dict[str, float], fn: TrainerFn = TrainerFn.FITTING):
    """A stand-in trainer for rank 0 of 2, for callbacks monitoring ``val_loss`` only: ``all_gather`` stacks this
    rank's vector on top of the one rank 1 would build from ``other_rank`` (NaN where it has no value)."""

    def all_gather(local: torch.Tensor) -> torch.Tensor:
        other = torch.tensor([other_rank.get("val_loss", math.nan)], dtype=local.dtype)
        return torch.stack([local, other])

    return SimpleNamespace(
        world_size=2,
        current_epoch=0,
        state=SimpleNamespace(fn=fn),
        callback_metrics={name: torch.tensor(value) for name, value in mine.items()},
        strategy=SimpleNamespace(all_gather=all_gather, root_device=torch.device("cpu")),
    )


ENGINE = [PhaseEarlyStopping(monitor="val_loss"), PhaseCheckpoint(monitor="val_loss")]


def test_a_monitored_metric_that_differs_between_ranks_stops_the_fit_saying_how_to_sync_it():
    trainer = two_rank_trainer({"val_loss": 0.5}, {"val_loss": 0.75})
    with pytest.raises(UnsyncedMetricError) as raised:
        check_monitored_metrics_synced(trainer, ENGINE)
    message = str(raised.value)
    assert "'val_loss' (monitored by PhaseEarlyStopping and PhaseCheckpoint) differs between ranks" in message
    assert "rank 0: 0.5, rank 1: 0.75" in message
    assert "self.log('val_loss', value, sync_dist=True)" in message and "torchmetrics" in message


def test_equal_values_on_every_rank_pass():
    check_monitored_metrics_synced(two_rank_trainer({"val_loss": 0.5}, {"val_loss": 0.5}), ENGINE)


def test_a_metric_logged_on_one_rank_only_counts_as_unsynced():
    with pytest.raises(UnsyncedMetricError, match=r"rank 0: 0\.5, rank 1: nan"):
        check_monitored_metrics_synced(two_rank_trainer({"val_loss": 0.5}, {}), ENGINE)


def test_a_metric_no_rank_logged_yet_is_not_checked():
    check_monitored_metrics_synced(two_rank_trainer({}, {}), ENGINE)


def test_nothing_is_checked_outside_fit_on_one_process_or_without_monitors():
    differing = two_rank_trainer({"val_loss": 0.5}, {"val_loss": 0.75}, fn=TrainerFn.VALIDATING)
    check_monitored_metrics_synced(differing, ENGINE)
    single = SimpleNamespace(world_size=1, state=SimpleNamespace(fn=TrainerFn.FITTING))
    check_monitored_metrics_synced(single, ENGINE)
    check_monitored_metrics_synced(two_rank_trainer({"val_loss": 0.5}, {"val_loss": 0.75}), [None])


def test_values_equal_up_to_reduction_order_rounding_count_as_equal_and_real_differences_do_not():
    assert all_equal([0.6931471824645996, 0.6931471824645996 * (1 + 1e-7)])
    assert not all_equal([0.6931, 0.6932])
    assert all_equal([math.nan, math.nan])
    assert not all_equal([math.nan, 0.5])
