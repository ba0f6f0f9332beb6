"""Under DDP every rank holds the same weights after every phase, including parameters thawed after wrapping.

DDP registers only the parameters that require grad when it wraps the model; a parameter thawed later is never
all-reduced, and with different data per rank the replicas drift apart without any error. ftexp re-wraps the model
at each change of the trainable set (``ftexp.callbacks.ddp.rewrap_ddp``).

The test runs real Lightning DDP on CPU (gloo, 2 processes): this file is executed as a script in a subprocess with
``strategy=DDPStrategy(process_group_backend="gloo")``, and Lightning's ``ddp`` launcher starts the script again for
rank 1. Both ranks run three fits in one process group (imports dominate the run time):

- ``fixed``: 3 epoch-driven phases, ``restore_best=False``;
- ``fixed_restore_best``: the same with ``restore_best=True``; the second transition rolls the model back to
  phase 0's checkpoint (a state taken before DDP was re-wrapped) and replays the thawing of phases 1 and 2;
- ``control``: ``restore_best=False`` with the re-wrap disabled, which must reproduce the drift (so the probe can
  see it, and the data really differs between ranks);
- ``unsynced``: a module that logs ``val_loss`` without ``sync_dist``; the engine must stop the fit on every rank at
  the first validation (``ftexp.callbacks.metric_sync``), before any rank acts on its own shard's value.

After every epoch (one epoch per phase) a probe callback all-gathers a flat vector of all parameters and records, on
rank 0, the max abs difference between ranks per parameter, how far each parameter moved from its initial value, and
a checksum of the data each rank trained on. Rank 0 writes everything to a JSON file that the tests read.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.ddp_launch import run_ddp_worker

# MLP parameter names (TinyModule wraps tests.tiny_models.mlp() as ``net``); phase 0 is the head.
PHASE_PARAMS = [
    ["net.6.weight", "net.6.bias"],
    ["net.4.weight", "net.4.bias"],
    ["net.2.weight", "net.2.bias", "net.0.weight", "net.0.bias"],
]
LR = 1e-2
SCHEDULE = {
    0: {"params": PHASE_PARAMS[0], "max_transition_epoch": 1},
    1: {"params": PHASE_PARAMS[1], "lr": LR, "max_transition_epoch": 2},
    2: {"params": PHASE_PARAMS[2], "lr": LR},
}
VARIANTS = {  # name -> (restore_best, rewrap enabled)
    "fixed": (False, True),
    "fixed_restore_best": (True, True),
    "control": (False, False),
}
SAME = 1e-7  # ranks count as identical below this max abs difference (in practice they are bitwise equal)
MOVED = 1e-4  # a parameter counts as trained once it moved this far (AdamW at lr 1e-2 moves it ~1e-2 per step)


# ---------------------------------------------------------------------------------------------------------- worker
def _run_worker(out_path: str) -> None:
    """Runs on both ranks (the subprocess's entry point): the three fits, then rank 0 writes the JSON."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import Callback
    from pytorch_lightning.strategies import DDPStrategy
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    import ftexp.callbacks.scheduler as scheduler_module
    from ftexp import FinetuningScheduler, PhaseCheckpoint
    from ftexp.callbacks.metric_sync import UnsyncedMetricError
    from tests.tiny_models import TinyModule

    class SyncedValModule(TinyModule):
        """TinyModule with a rank-averaged ``val_loss``, so the restore-best decisions are the same on all ranks."""

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.mse_loss(self(x), y), sync_dist=True)

    class RankDivergenceProbe(Callback):
        def __init__(self, scheduler: FinetuningScheduler) -> None:
            self.scheduler = scheduler
            self.records: list[dict[str, Any]] = []
            self.initial: dict[str, torch.Tensor] = {}
            self.data_checksum = 0.0

        def on_train_start(self, trainer, pl_module) -> None:
            self.initial = {n: p.detach().clone() for n, p in pl_module.named_parameters()}

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.data_checksum = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            x, y = batch
            self.data_checksum += float(x.double().sum() + y.double().sum())

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            named = list(pl_module.named_parameters())
            flat = torch.cat([p.detach().reshape(-1) for _, p in named])
            gathered = trainer.strategy.all_gather(flat)  # (world_size, n)
            checksums = trainer.strategy.all_gather(torch.tensor([self.data_checksum], dtype=torch.float64))
            spread = (gathered - gathered[0]).abs().amax(dim=0)
            rank_diff, moved, offset = {}, {}, 0
            for name, p in named:
                n = p.numel()
                rank_diff[name] = float(spread[offset : offset + n].max())
                moved[name] = float((p.detach() - self.initial[name]).abs().max())
                offset += n
            self.records.append(
                {
                    "epoch": trainer.current_epoch,
                    "depth": self.scheduler.curr_depth,
                    "max_rank_diff": max(rank_diff.values()),
                    "rank_diff": rank_diff,
                    "moved": moved,
                    "trainable": sorted(n for n, p in named if p.requires_grad),
                    "data_checksums": [float(c) for c in checksums.reshape(-1)],
                    "world_size": trainer.world_size,
                    "backend": torch.distributed.get_backend(),
                    "ddp_wrapped": isinstance(trainer.strategy.model, DistributedDataParallel),
                }
            )

    def fit(name: str, restore_best: bool) -> dict[str, Any]:
        pl.seed_everything(0, verbose=False)
        scheduler = FinetuningScheduler(ft_schedule=SCHEDULE, restore_best=restore_best, epoch_transitions_only=True)
        probe = RankDivergenceProbe(scheduler)
        callbacks: list[Callback] = [scheduler, probe]
        if restore_best:
            # Keeps the *worst* val_loss: val_loss falls every epoch here, so the best checkpoint stays epoch 0 and
            # the phase-2 transition really rolls the model back to phase 0's state before thawing phases 1 and 2.
            callbacks.append(PhaseCheckpoint(monitor="val_loss", mode="max", dirpath=Path(out_path).parent / name))
        trainer = pl.Trainer(
            default_root_dir=Path(out_path).parent / name,
            max_epochs=3,
            accelerator="cpu",
            devices=2,
            strategy=DDPStrategy(process_group_backend="gloo"),
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=restore_best,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=True,
        )
        # 64 samples -> DistributedSampler (no shuffle) gives rank r samples r, r+2, ...: 4 batches of 8 per epoch.
        trainer.fit(SyncedValModule(lr=LR, batch_size=8))
        return {"records": probe.records, "transitions": scheduler.transitions}

    def fit_unsynced() -> dict[str, Any]:
        """TinyModule logs val_loss per rank (no sync_dist): the fit must stop, on both ranks, at epoch 0."""
        pl.seed_everything(0, verbose=False)
        scheduler = FinetuningScheduler(ft_schedule=SCHEDULE, restore_best=True)
        checkpoint = PhaseCheckpoint(monitor="val_loss", dirpath=Path(out_path).parent / "unsynced")
        trainer = pl.Trainer(
            default_root_dir=Path(out_path).parent / "unsynced",
            max_epochs=3,
            accelerator="cpu",
            devices=2,
            strategy=DDPStrategy(process_group_backend="gloo"),
            callbacks=[scheduler, checkpoint],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        error = None
        try:
            trainer.fit(TinyModule(lr=LR, batch_size=8))
        except UnsyncedMetricError as err:
            error = str(err)
        errors = [None] * trainer.world_size
        torch.distributed.all_gather_object(errors, error)
        saved = sorted(path.name for path in (Path(out_path).parent / "unsynced").glob("*.ckpt"))
        return {"errors": errors, "epoch": trainer.current_epoch, "saved": saved}

    results = {}
    original_rewrap = scheduler_module.rewrap_ddp
    for name, (restore_best, rewrap) in VARIANTS.items():
        scheduler_module.rewrap_ddp = original_rewrap if rewrap else (lambda trainer: False)
        try:
            results[name] = fit(name, restore_best)
        finally:
            scheduler_module.rewrap_ddp = original_rewrap
    results["unsynced"] = fit_unsynced()
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        Path(out_path).write_text(json.dumps(results, indent=1))
    # leave the process group together: a rank that exits while the other's gloo threads still talk to it makes
    # that rank abort at exit ("terminate called without an active exception", exit code -6)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    _run_worker(sys.argv[1])


# ---------------------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> dict[str, Any]:
    """Launch the 2-rank DDP worker once for all variants and return rank 0's records."""
    workdir = tmp_path_factory.mktemp("ddp")
    out = workdir / "results.json"
    return run_ddp_worker(__file__, workdir, out)


def _phase_of(name: str) -> int:
    return next(depth for depth, names in enumerate(PHASE_PARAMS) if name in names)


def _assert_ran_three_phases_under_ddp(records: list[dict[str, Any]]) -> None:
    assert [r["depth"] for r in records] == [0, 1, 2], "one epoch per phase, final depth 2"
    for r in records:
        assert r["world_size"] == 2
        assert r["backend"] == "gloo"
        assert r["ddp_wrapped"]
        assert r["trainable"] == sorted(n for depth in range(r["depth"] + 1) for n in PHASE_PARAMS[depth])
        checksum_0, checksum_1 = r["data_checksums"]
        assert checksum_0 != pytest.approx(checksum_1), "the ranks must train on different samples"


def _assert_identical_across_ranks_and_trained(records: list[dict[str, Any]]) -> None:
    for r in records:
        assert r["max_rank_diff"] <= SAME, f"ranks differ after phase {r['depth']}: {r['rank_diff']}"
        for name, moved in r["moved"].items():
            if _phase_of(name) <= r["depth"]:
                assert moved > MOVED, f"phase {r['depth']}: trainable {name} did not train"
            else:
                assert moved == 0.0, f"phase {r['depth']}: {name} is frozen until phase {_phase_of(name)} but moved"


@pytest.mark.slow
def test_ddp_ranks_hold_identical_weights_after_every_phase(ddp_results):
    """Every parameter, including those thawed after DDP wrapped the model, is equal on both ranks after each of
    the 3 phases, while each phase's parameters really train and later phases' parameters stay frozen."""
    run = ddp_results["fixed"]
    _assert_ran_three_phases_under_ddp(run["records"])
    _assert_identical_across_ranks_and_trained(run["records"])
    assert [t["depth"] for t in run["transitions"]] == [1, 2]


@pytest.mark.slow
def test_ddp_ranks_stay_identical_when_transitions_restore_the_best_state(ddp_results):
    """With ``restore_best=True`` each transition restores the best checkpoint (for phase 2 one from phase 0, taken
    while phase 1's parameters were frozen) and re-thaws up to the new phase; the ranks still hold identical weights
    after every phase."""
    run = ddp_results["fixed_restore_best"]
    _assert_ran_three_phases_under_ddp(run["records"])
    _assert_identical_across_ranks_and_trained(run["records"])
    assert [t["depth"] for t in run["transitions"]] == [1, 2]
    assert [t["restored_from_depth"] for t in run["transitions"]] == [0, 0], "phase 2 must start from phase 0's best"


@pytest.mark.slow
def test_without_rewrap_parameters_thawed_after_wrapping_drift_apart_across_ranks(ddp_results):
    """Control: with ftexp's re-wrap disabled, the parameters thawed in phase 1 are never all-reduced and differ
    between ranks after phase 1 (the public FTS bug), while the phase-0 parameters DDP wrapped stay identical.
    This shows the probe and the per-rank data can detect the bug that the other tests rule out."""
    records = ddp_results["control"]["records"]
    _assert_ran_three_phases_under_ddp(records)
    phase0, phase1, phase2 = records
    assert phase0["max_rank_diff"] <= SAME
    for name, diff in phase1["rank_diff"].items():
        if _phase_of(name) == 1:
            assert diff > 1e-4, f"{name} was thawed after wrapping, yet the ranks agree: the control is vacuous"
        else:
            assert diff <= SAME, f"{name} was registered with DDP (phase 0) or is frozen, yet the ranks differ"
    for name in PHASE_PARAMS[1] + PHASE_PARAMS[2]:
        assert phase2["rank_diff"][name] > 1e-4, f"{name} trains unsynchronised in phase 2 and should differ"


@pytest.mark.slow
def test_a_monitored_metric_logged_without_sync_stops_the_fit_on_every_rank_at_the_first_validation(ddp_results):
    """TinyModule logs ``val_loss`` with a plain ``self.log`` (each rank's own shard): both ranks stop with the same
    message at epoch 0's validation, before the checkpoint names a best file after its own rank's value."""
    run = ddp_results["unsynced"]
    error_rank0, error_rank1 = run["errors"]
    assert error_rank0 is not None and error_rank0 == error_rank1
    assert "at the validation of epoch 0" in error_rank0 and run["epoch"] == 0
    assert "'val_loss' (monitored by PhaseEarlyStopping and PhaseCheckpoint) differs between ranks" in error_rank0
    assert "sync_dist=True" in error_rank0
    assert run["saved"] == [], "no rank saved a checkpoint named after its own value"
