"""Resume with the random state the interrupted process had: it travels in every checkpoint.

A process that resumes from ``last.ckpt`` starts from the seed (``seed_everything``), not from the random state of
the process that wrote the file. Without this callback the resumed run shuffles its next epoch differently, draws
other dropout masks, and ends somewhere else than the same run without the interruption.

What is saved, per process, in the checkpoint's callback states (Lightning's ``state_dict``/``load_state_dict``):
the global generators that training draws from: torch's CPU generator (the ``DataLoader(shuffle=True)``
permutation, the DataLoader's base seed for its workers, dropout on the CPU), the CUDA generator of the process's
device when it trains on a GPU, numpy's and Python's ``random``. A DataLoader or sampler given its own
``generator=`` keeps its own state, which this callback does not see.

Saving the states rather than reseeding every epoch from (seed, epoch) leaves an uninterrupted run exactly as it was
(the same data order and dropout masks: results measured before still hold), and is also what an exact mid-epoch
resume needs (a state at a batch boundary is not a function of the epoch).

When the state is restored (checked against pytorch_lightning 2.6.6 and 2.4.0): ``Trainer._run`` restores the
callbacks' states (``load_state_dict``) right after the ``setup`` hooks, before ``strategy.setup``, ``on_fit_start``,
the sanity check (which runs under ``isolate_rng``: it draws nothing from the run's generators) and the fit loop. A
process creates the training DataLoader iterator of its first epoch in ``FitLoop.setup_data``, after the restore, and
that of every later epoch in the epoch loop's ``on_run_start``; each iterator draws its base seed, and the
``RandomSampler`` its permutation's seed, from the global generator. So the process that resumes from the end of
epoch ``e`` and the process that went on draw the same numbers in the same order from epoch ``e + 1``'s iterator on.

- Lightning before 2.5.3 creates the first resumed epoch's iterator twice, the second time after
  ``on_train_epoch_start``: there the state is restored again in that hook, so that the iterator trained on draws
  what the uninterrupted run's drew (:data:`FIRST_RESUMED_ITERATOR_CREATED_TWICE`).
- A callback of yours that draws random numbers in ``on_train_epoch_start`` draws them, in the first resumed epoch
  only, after the iterator was created rather than before: the run differs from there on.
- Persistent DataLoader workers would break it: their iterator is created once per process, so a resumed process
  draws a base seed the uninterrupted one does not. ``PairClassificationDataModule`` starts its workers with every
  iterator for that reason, and Lightning seeds each worker from the iterator's base seed, the worker id and the rank
  (``seed_everything(workers=True)``, as :func:`ftexp.train.run` calls it): workers draw the same after a resume too.

**Inside an epoch** (a preemption's checkpoint at a batch boundary), the state at the checkpoint is not where the
epoch's iterator came from. The checkpoint also holds, per process, the state captured when this epoch's training
iterator was created (``on_fit_start`` for a process's first epoch, whose iterator ``FitLoop.setup_data`` creates;
``on_train_epoch_start`` for later ones, created right after that hook), and how many of its batches were trained.
The resumed fit (in ``on_train_start``, after Lightning created its iterator from the wrong state) restores that
state, creates the iterator again (the same permutation, the same worker base seed, the DistributedSampler told its
epoch first), fetches and drops the trained batches (loaded, so that DataLoader workers process the same batches and
draw as before; not trained), and then restores the state of the checkpoint: from the next batch on, everything
draws as in the uninterrupted fit (:func:`ftexp.callbacks.lightning_internals.restart_training_iterator_at`).
Lightning's own mechanism for this, a loader with ``state_dict`` (torchdata's ``StatefulDataLoader``), counts the
batches the loader handed out, and Lightning's fetcher has asked for one batch more than the model trained on when
the checkpoint is written: it would resume one batch late. Needs pytorch-lightning 2.5 or later (2.4 trains the
checkpointed batch a second time: the callback warns).

Under DDP every rank has its own state (the ranks see different batches, so dropout draws different amounts), but
only rank 0 writes the checkpoint: every rank dumps it, and :meth:`ResumableRandomState.state_dict` gathers all
ranks' states there, so the file holds one per rank and each rank restores its own. A resume with another number of
processes cannot be exact (the shards change): the ranks keep the seeded state, with a warning.

Only a ``fit`` restores: ``trainer.test(ckpt_path=...)`` and ``validate`` load callback states too, and evaluating a
checkpoint must not rewind the caller's random state.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from packaging.version import Version
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn

from ftexp.callbacks.lightning_internals import (
    RESUMES_AFTER_THE_CHECKPOINTED_BATCH,
    batches_resumed_after,
    restart_training_iterator_at,
    resumes_inside_epoch,
    training_iterator_exists,
)

# Lightning before 2.5.3 creates the training DataLoader iterator of the first epoch after a resume twice: in
# FitLoop.setup_data and again in the epoch loop's on_run_start, after on_train_epoch_start (pytorch-lightning #20775,
# "Fixed double iteration bug when resumed from a checkpoint", 2.5.3). The second one is trained on. Checked against
# 2.4.0 and 2.6.6: tests/callbacks/test_random_state.py runs on both (.ci/run), and fails when this is wrong.
FIRST_RESUMED_ITERATOR_CREATED_TWICE = Version(pl.__version__) < Version("2.5.3")


def capture_random_state(device: torch.device | None = None) -> dict[str, Any]:
    """The global random state of this process, as tensors and plain values (a checkpoint holding it loads with
    ``torch.load(weights_only=True)``); ``device``: a CUDA device whose generator is included. Not Lightning's
    (private) ``lightning_fabric.utilities.seed._collect_rng_states``: it keeps numpy's state as a tuple holding an
    ndarray, which ``weights_only`` loading refuses, and every CUDA device's generator rather than this rank's.

    >>> state = capture_random_state()
    >>> first = torch.rand(2)
    >>> restore_random_state(state)
    >>> torch.equal(torch.rand(2), first)
    True
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, mersenne_twister, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "state": torch.tensor(mersenne_twister, dtype=torch.int64), "gauss": gauss_next},
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_random_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Set this process's global generators to ``state`` (from :func:`capture_random_state`); the CUDA generator of
    ``device`` only when the state has one and ``device`` is a CUDA device."""
    torch.set_rng_state(state["torch"].cpu())
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].cpu().numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"].tolist()), python_state["gauss"]))
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


class ResumableRandomState(Callback):
    """Save every process's global random state in each checkpoint and restore it when a fit resumes from one, so
    that a resumed run continues exactly as the uninterrupted run (same data order, same dropout masks), from an
    epoch's end or from inside an epoch. Part of every Hydra run (``callbacks.random_state`` in config.yaml;
    ``~callbacks.random_state`` leaves it out); with a plain Trainer::

        trainer = pl.Trainer(callbacks=[ResumableRandomState(), ...])
        trainer.fit(model, ckpt_path="last.ckpt")

    The module docstring (:mod:`ftexp.callbacks.random_state`) says what is saved and why the restore comes at the
    right moment.
    """

    def __init__(self) -> None:
        self._trainer: pl.Trainer | None = None
        self._rank, self._world_size = 0, 1
        self._device: torch.device | None = None
        self._fitting = False
        self._restore_again: dict[str, Any] | None = None  # FIRST_RESUMED_ITERATOR_CREATED_TWICE
        # the random state this process had when it created the current epoch's training iterator
        self._epoch_start: dict[str, Any] | None = None
        self._iterator_created_before_epoch_hooks = False
        self._resume_inside_epoch: tuple[int, dict[str, Any], dict[str, Any]] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # called before Lightning restores callback states: where this process sits is known from here on
        self._trainer = trainer
        self._rank, self._world_size = trainer.global_rank, trainer.world_size
        self._device = trainer.strategy.root_device
        self._fitting = stage == "fit"
        if self._fitting:
            # a module whose configure_optimizers reads trainer.estimated_stepping_batches (a scheduler shaped over
            # the run) makes Lightning create the first training iterator there, before on_fit_start: from this state
            # (or the restored one, load_state_dict), which on_fit_start then leaves as it is
            self._epoch_start = capture_random_state(self._device)

    def state_dict(self) -> dict[str, Any]:
        state = {"now": capture_random_state(self._device), "epoch_start": self._epoch_start}
        if self._world_size > 1 and dist.is_available() and dist.is_initialized():
            # every rank dumps the checkpoint (Trainer.save_checkpoint runs on all ranks), rank 0 writes it
            ranks: list[Any] = [None] * self._world_size
            dist.all_gather_object(ranks, state)
        else:
            ranks = [state]
        saved: dict[str, Any] = {"ranks": [rank["now"] for rank in ranks]}
        if self._fitting and all(rank["epoch_start"] is not None for rank in ranks):
            saved["epoch_start_ranks"] = [rank["epoch_start"] for rank in ranks]
            saved["batches_trained"] = batches_resumed_after(self._trainer)
        return saved

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self._fitting and self.state_key not in checkpoint.get("callbacks", {}):
            rank_zero_info(
                "ftexp: the checkpoint holds no random state (written without ResumableRandomState): the resumed run "
                "draws from the seed, not from where the interrupted one was"
            )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._fitting:
            return
        ranks = state_dict["ranks"]
        if len(ranks) != self._world_size:
            rank_zero_warn(
                f"ftexp: the checkpoint holds the random state of {len(ranks)} process(es) and this run has "
                f"{self._world_size}: every process keeps its seeded state, so the resumed run will not repeat the "
                "uninterrupted one exactly"
            )
            return
        now = ranks[self._rank]
        restore_random_state(now, self._device)
        self._epoch_start = now  # (a strategy that restores after on_fit_start: the first iterator comes from here)
        if FIRST_RESUMED_ITERATOR_CREATED_TWICE:
            self._restore_again = now
        if state_dict.get("batches_trained"):
            epoch_start = state_dict["epoch_start_ranks"][self._rank]
            self._resume_inside_epoch = (state_dict["batches_trained"], epoch_start, now)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the first training iterator of this process is created next, in FitLoop.setup_data, from this state (the
        # sanity check in between draws nothing from the run's generators: it runs under isolate_rng), unless it
        # exists already (see setup)
        if not training_iterator_exists(trainer):
            self._epoch_start = capture_random_state(self._device)
        self._iterator_created_before_epoch_hooks = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if resumes_inside_epoch(trainer):
            # Lightning calls no on_train_epoch_start for the resumed epoch: the next call is the next epoch's
            self._iterator_created_before_epoch_hooks = False
        resume, self._resume_inside_epoch = self._resume_inside_epoch, None
        if resume is None:
            return
        batches, epoch_start, now = resume
        if batches > trainer.num_training_batches:
            return  # another number of batches per epoch than the interrupted fit's: it cannot line up anyway
        if not RESUMES_AFTER_THE_CHECKPOINTED_BATCH:
            rank_zero_warn(
                f"ftexp: the fit resumes inside an epoch, after its batch {batches}, and pytorch-lightning "
                f"{pl.__version__} trains that batch a second time (fixed in 2.5.0): the resumed run will not repeat "
                "the uninterrupted one exactly"
            )
            return
        # the interrupted process built this epoch's iterator from `epoch_start`: build it again from there (the
        # same permutation, the same worker seeds), drop the batches already trained, then carry on from `now`
        restore_random_state(epoch_start, self._device)
        restarted = restart_training_iterator_at(trainer, batches)
        restore_random_state(now, self._device)
        if not restarted:
            rank_zero_warn(
                "ftexp: the fit resumes inside an epoch, and a training loader without a length cannot start at the "
                f"batch the interrupted fit had reached ({batches}): the resumed run will not repeat the "
                "uninterrupted one exactly"
            )
            return
        self._epoch_start = epoch_start
        rank_zero_info(f"ftexp: resuming epoch {trainer.current_epoch} at its batch {batches}")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._restore_again is not None:
            restore_random_state(self._restore_again, self._device)
            self._restore_again = None
        if self._iterator_created_before_epoch_hooks:
            self._iterator_created_before_epoch_hooks = False  # this epoch's iterator came from on_fit_start's state
        else:
            # every later epoch's iterator is created after this hook (the epoch loop's on_run_start)
            self._epoch_start = capture_random_state(self._device)
