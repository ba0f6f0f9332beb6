"""Under DDP every rank resumes with its own random state: a 2-rank fit resumed from an epoch-end checkpoint, or
from a preemption's inside an epoch (at the next batch of each rank's shard), draws, on each rank, what that rank
drew in the uninterrupted fit (``ftexp.ResumableRandomState`` gathers the ranks'
states into the checkpoint rank 0 writes).

Real Lightning DDP on CPU (gloo, 2 processes): this file runs as a script in a subprocess and Lightning's ``ddp``
launcher starts it again for rank 1. Each rank draws a different amount per step (as ranks padding their batches to
different lengths do under dropout), so one state restored on both ranks could not repeat the run. Both fits run in
one process group; the resumed one seeds and builds everything anew, as a new process does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from ftexp.callbacks.lightning_internals import RESUMES_AFTER_THE_CHECKPOINTED_BATCH
from tests.callbacks.test_random_state import BATCHES, EPOCHS, RESUMED_AFTER
from tests.ddp_launch import run_ddp_worker


def _run_worker(out_path: str) -> None:
    """Runs on both ranks: the uninterrupted fit, the fit resumed from its epoch-1 checkpoint, then rank 0 writes
    what each rank saw."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.strategies import DDPStrategy

    from ftexp import ResumableRandomState
    from ftexp.callbacks.preemption import PreemptionCheckpoint, RequeueRequested
    from tests.callbacks.test_random_state import NoisyModule
    from tests.helpers import SignalSelfAt

    class RankNoisyModule(NoisyModule):
        def training_step(self, batch, batch_idx):
            self.seen.append(("rank draws", torch.rand(self.global_rank + 1).tolist()))
            return super().training_step(batch, batch_idx)

    def fit(name: str, ckpt_path: Path | None = None, stop_inside_epoch_1: bool = False) -> list:
        pl.seed_everything(0, workers=True, verbose=False)
        module = RankNoisyModule(num_workers=0)
        root = Path(out_path).parent / name
        trainer = pl.Trainer(
            default_root_dir=root,
            max_epochs=EPOCHS,
            limit_train_batches=BATCHES,
            accelerator="cpu",
            devices=2,
            strategy=DDPStrategy(process_group_backend="gloo"),
            callbacks=[
                ResumableRandomState(),
                ModelCheckpoint(dirpath=root, filename="{epoch}", save_top_k=-1, save_on_train_epoch_end=True),
                *(preempted_on_rank_0(root) if stop_inside_epoch_1 else []),
            ],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            deterministic=True,
        )
        try:
            trainer.fit(module, ckpt_path=ckpt_path)
        except RequeueRequested:
            assert stop_inside_epoch_1
        return module.seen

    def preempted_on_rank_0(root: Path) -> list:
        """The preemption checkpoint on both ranks; the signal, during batch 1 of epoch 1, on rank 0 only: the ranks
        agree to stop at that batch's end."""
        preemption = PreemptionCheckpoint(root, signum=signal.SIGUSR2)
        rank_0 = int(os.environ.get("LOCAL_RANK", "0")) == 0
        return [preemption, *([SignalSelfAt(signal.SIGUSR2, 1, 1)] if rank_0 else [])]

    parent = Path(out_path).parent
    uninterrupted = fit("uninterrupted")
    resumed = fit("resumed", parent / "uninterrupted" / f"epoch={RESUMED_AFTER}.ckpt")
    fit("stopped", stop_inside_epoch_1=True)
    resumed_inside = fit("resumed_inside", parent / "stopped" / "last.ckpt")
    seen = {"uninterrupted": uninterrupted, "resumed": resumed, "resumed_inside": resumed_inside}
    ranks: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(ranks, seen)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        Path(out_path).write_text(json.dumps(ranks))
    # leave the process group together (see tests/callbacks/test_ddp.py)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    _run_worker(sys.argv[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, list]]:
    workdir = tmp_path_factory.mktemp("ddp_random_state")
    out = workdir / "ranks.json"
    return run_ddp_worker(__file__, workdir, out)


def steps_after(seen: list, epoch: int) -> list:
    """The steps of epochs after ``epoch``: each step is a rank-draws entry followed by NoisyModule's record."""
    pairs = list(zip(seen[::2], seen[1::2], strict=True))
    return [pair for pair in pairs if pair[1][0] > epoch]


@pytest.mark.slow
def test_each_rank_resumes_with_its_own_random_state_and_repeats_its_uninterrupted_draws(ranks):
    assert len(ranks) == 2
    for rank, seen in enumerate(ranks):
        resumed = steps_after(seen["resumed"], -1)
        assert [step[1][0] for step in resumed] == [2, 2, 2, 3, 3, 3], f"rank {rank}"
        assert resumed == steps_after(seen["uninterrupted"], RESUMED_AFTER), f"rank {rank}"
    assert steps_after(ranks[0]["resumed"], -1) != steps_after(ranks[1]["resumed"], -1), "the ranks drew differently"


@pytest.mark.slow
@pytest.mark.skipif(not RESUMES_AFTER_THE_CHECKPOINTED_BATCH, reason="fixed in pytorch-lightning 2.5.0")
def test_a_2_rank_fit_stopped_inside_an_epoch_resumes_each_rank_at_its_next_batch_with_its_own_draws(ranks):
    for rank, seen in enumerate(ranks):
        pairs = steps_after(seen["uninterrupted"], -1)
        stopped_after = BATCHES + 2  # epoch 0, then batches 0 and 1 of epoch 1
        assert steps_after(seen["resumed_inside"], -1) == pairs[stopped_after:], f"rank {rank}"
