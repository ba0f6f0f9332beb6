"""A fit resumed from an epoch-end checkpoint draws the same random numbers as the fit that went on: the same data
order, the same dropout masks, the same draws from torch, numpy and Python's ``random``, in the main process and in
DataLoader workers (``ftexp.ResumableRandomState``)."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ftexp import ResumableRandomState
from ftexp.callbacks import random_state
from ftexp.callbacks.lightning_internals import RESUMES_AFTER_THE_CHECKPOINTED_BATCH
from ftexp.callbacks.preemption import PreemptionCheckpoint, RequeueRequested
from ftexp.callbacks.random_state import capture_random_state, restore_random_state
from tests.helpers import SignalSelfAt

EPOCHS, RESUMED_AFTER = 4, 1  # the resumed fit starts from the checkpoint of epoch 1 and trains epochs 2 and 3
BATCHES = 3  # training batches per epoch (limit_train_batches)


class NoisyPairs(Dataset):
    """Fixed inputs and targets; each item also carries a draw from the torch generator of the process loading it
    (the main process, or a DataLoader worker), as a random augmentation would."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=generator)
        self.y = self.x[:, :1].tanh()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return index, self.x[index], self.y[index], torch.rand(())


class NoisyModule(pl.LightningModule):
    """Dropout, a shuffled training set, and one draw from each global generator per step; ``seen`` records, per
    training step, everything random the step met."""

    def __init__(self, num_workers: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 1))
        self.num_workers = num_workers
        self.seen: list[tuple] = []

    def training_step(self, batch, batch_idx):
        index, x, y, noise = batch
        draws = (torch.rand(()).item(), float(np.random.rand()), random.random())
        prediction = self.net(x)
        self.seen.append((self.current_epoch, index.tolist(), noise.tolist(), draws, prediction.tolist()))
        return nn.functional.mse_loss(prediction, y)

    def validation_step(self, batch, batch_idx):
        _, x, y, _ = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return self._loader(NoisyPairs(64, seed=0), shuffle=True)

    def val_dataloader(self):
        return self._loader(NoisyPairs(16, seed=1), shuffle=False)

    def _loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(data, batch_size=8, shuffle=shuffle, num_workers=self.num_workers)


def fit(
    checkpoints: Path,
    callbacks: list,
    num_workers: int = 0,
    ckpt_path: Path | None = None,
    module_class: type[NoisyModule] | None = None,
    **trainer_options,
) -> tuple[NoisyModule, pl.Trainer]:
    """One process's fit as ``ftexp.train.run`` starts it (seed first, then the objects), writing a checkpoint at
    the end of every epoch; a resumed fit builds everything anew, as a new process does."""
    pl.seed_everything(0, workers=True, verbose=False)
    module = (module_class or NoisyModule)(num_workers)
    every_epoch = ModelCheckpoint(dirpath=checkpoints, filename="{epoch}", save_top_k=-1, save_on_train_epoch_end=True)
    trainer = pl.Trainer(
        default_root_dir=checkpoints,
        max_epochs=EPOCHS,
        limit_train_batches=BATCHES,  # a different part of the shuffled set every epoch
        callbacks=[*callbacks, every_epoch],
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        **trainer_options,
    )
    trainer.fit(module, ckpt_path=ckpt_path)
    return module, trainer


def resumed_and_uninterrupted(tmp_path: Path, callbacks: list, num_workers: int = 0):
    """The steps of epochs 2.. of the uninterrupted fit and of the fit resumed from epoch 1's checkpoint, and both
    fits' final weights."""
    uninterrupted, _ = fit(tmp_path / "uninterrupted", callbacks, num_workers)
    epoch_end = tmp_path / "uninterrupted" / f"epoch={RESUMED_AFTER}.ckpt"
    resumed, _ = fit(tmp_path / "resumed", callbacks, num_workers, ckpt_path=epoch_end)
    tail = [step for step in uninterrupted.seen if step[0] > RESUMED_AFTER]
    return resumed.seen, tail, resumed.state_dict(), uninterrupted.state_dict()


@pytest.mark.parametrize("num_workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_a_fit_resumed_at_an_epoch_end_draws_what_the_uninterrupted_fit_drew(tmp_path, num_workers):
    resumed, uninterrupted, resumed_weights, final_weights = resumed_and_uninterrupted(
        tmp_path, [ResumableRandomState()], num_workers
    )

    assert [step[0] for step in resumed] == [2, 2, 2, 3, 3, 3]
    assert resumed == uninterrupted, "data order, worker draws, global draws and dropout all repeat"
    assert all(torch.equal(resumed_weights[name], final_weights[name]) for name in final_weights)


def test_without_it_the_resumed_fit_starts_from_the_seed_and_sees_other_batches(tmp_path):
    resumed, uninterrupted, _, _ = resumed_and_uninterrupted(tmp_path, [])

    assert [step[1] for step in resumed] != [step[1] for step in uninterrupted]


def test_the_checkpoint_holds_one_state_per_process_and_loads_without_unpickling_code(tmp_path):
    fit(tmp_path, [ResumableRandomState()])

    checkpoint = torch.load(tmp_path / "epoch=0.ckpt", weights_only=True)
    (state,) = checkpoint["callbacks"]["ResumableRandomState"]["ranks"]
    assert set(state) == {"torch", "numpy", "python"}, "no CUDA generator on a CPU run"


def test_a_checkpoint_of_another_number_of_processes_keeps_the_seeded_state_with_a_warning(tmp_path):
    fit(tmp_path / "two", [ResumableRandomState()])
    checkpoint = torch.load(tmp_path / "two" / "epoch=1.ckpt", weights_only=True)
    state = checkpoint["callbacks"]["ResumableRandomState"]
    state["ranks"] = state["ranks"] * 2  # as if two ranks had written it
    torch.save(checkpoint, tmp_path / "two_ranks.ckpt")

    with pytest.warns(UserWarning, match="random state of 2 process"):
        resumed, _ = fit(tmp_path / "one", [ResumableRandomState()], ckpt_path=tmp_path / "two_ranks.ckpt")
    assert resumed.current_epoch == EPOCHS


def test_a_checkpoint_written_without_it_resumes_from_the_seed_and_says_so(tmp_path, monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(random_state, "rank_zero_info", said.append)
    fit(tmp_path / "without", [])

    resumed, _ = fit(tmp_path / "with", [ResumableRandomState()], ckpt_path=tmp_path / "without" / "epoch=1.ckpt")
    assert resumed.current_epoch == EPOCHS
    assert len(said) == 1 and "the checkpoint holds no random state" in said[0]


def test_a_state_restores_every_global_generator_including_a_cached_gaussian():
    np.random.randn(), random.gauss(0, 1)  # each now holds the second value of a pair in its cache
    state = capture_random_state()
    first = draw_from_every_generator()

    restore_random_state(state)
    again = draw_from_every_generator()

    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]


def draw_from_every_generator() -> tuple:
    return torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn(), random.gauss(0, 1)


@pytest.mark.skipif(
    not RESUMES_AFTER_THE_CHECKPOINTED_BATCH,
    reason=f"pytorch-lightning {pl.__version__} trains the checkpointed batch again after a resume (fixed in 2.5.0)",
)
@pytest.mark.parametrize(
    ("signalled_batch", "stopped_after"),
    [(0, (1, 0)), (1, (1, 1)), (BATCHES - 1, (2, 0))],
    ids=["first batch", "middle batch", "last batch: the stop waits for the epoch's end and one more batch"],
)
def test_a_fit_stopped_inside_an_epoch_resumes_at_the_next_batch_and_draws_what_the_uninterrupted_fit_drew(
    tmp_path, signalled_batch, stopped_after
):
    resumed, uninterrupted = stop_inside_epoch_1_and_resume(tmp_path, signalled_batch, stopped_after)

    assert resumed.seen[0][0] == stopped_after[0], "the resumed fit goes on in the epoch it stopped in"
    assert resumed.seen == uninterrupted.seen[trained(stopped_after) :], "the same batches, order and draws"
    assert all(torch.equal(resumed.state_dict()[name], value) for name, value in uninterrupted.state_dict().items())


@pytest.mark.slow
@pytest.mark.skipif(not RESUMES_AFTER_THE_CHECKPOINTED_BATCH, reason="as above: fixed in pytorch-lightning 2.5.0")
def test_with_dataloader_workers_a_fit_stopped_inside_an_epoch_resumes_as_the_uninterrupted_fit_goes_on(tmp_path):
    resumed, uninterrupted = stop_inside_epoch_1_and_resume(tmp_path, 1, (1, 1), num_workers=2)

    assert resumed.seen == uninterrupted.seen[trained((1, 1)) :], "worker draws too: each worker seeded as before"


def trained(stopped_after: tuple[int, int]) -> int:
    epoch, batch = stopped_after
    return epoch * BATCHES + batch + 1


def stop_inside_epoch_1_and_resume(
    tmp_path: Path, signalled_batch: int, stopped_after: tuple[int, int], num_workers: int = 0
) -> tuple[NoisyModule, NoisyModule]:
    """The fit resumed from the checkpoint of a fit preempted while batch ``signalled_batch`` of epoch 1 trained,
    and the uninterrupted fit."""
    uninterrupted, _ = fit(tmp_path / "uninterrupted", [ResumableRandomState()], num_workers)
    preemption = PreemptionCheckpoint(tmp_path / "stopped", signum=signal.SIGUSR2)
    with pytest.raises(RequeueRequested):
        signal_at = SignalSelfAt(signal.SIGUSR2, 1, signalled_batch)
        fit(tmp_path / "stopped", [ResumableRandomState(), preemption, signal_at], num_workers)
    assert torch.load(preemption.path, weights_only=True)["global_step"] == trained(stopped_after)
    resumed, _ = fit(tmp_path / "resumed", [ResumableRandomState()], num_workers, ckpt_path=preemption.path)
    return resumed, uninterrupted


class NoisyModuleWithARunLongSchedule(NoisyModule):
    """Its LR scheduler spans the run's steps, read from ``trainer.estimated_stepping_batches``: Lightning then
    creates the first training iterator inside ``configure_optimizers``, before ``on_fit_start``."""

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        steps = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.1, total_iters=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def stopped_and_resumed(tmp_path: Path, signalled: tuple[int, int], **options) -> tuple[NoisyModule, NoisyModule, int]:
    """The uninterrupted fit, the fit resumed after a preemption signalled in batch ``signalled[1]`` of epoch
    ``signalled[0]``, and the global step the preempted fit stopped after."""
    uninterrupted, _ = fit(tmp_path / "uninterrupted", [ResumableRandomState()], **options)
    preemption = PreemptionCheckpoint(tmp_path / "stopped", signum=signal.SIGUSR2)
    with pytest.raises(RequeueRequested):
        fit(
            tmp_path / "stopped",
            [ResumableRandomState(), preemption, SignalSelfAt(signal.SIGUSR2, *signalled)],
            **options,
        )
    steps = torch.load(preemption.path, weights_only=True)["global_step"]
    resumed, _ = fit(tmp_path / "resumed", [ResumableRandomState()], ckpt_path=preemption.path, **options)
    return resumed, uninterrupted, steps


@pytest.mark.skipif(not RESUMES_AFTER_THE_CHECKPOINTED_BATCH, reason="fixed in pytorch-lightning 2.5.0")
def test_a_fit_stopped_in_its_first_epoch_resumes_exactly_when_its_scheduler_counted_the_run_s_steps(tmp_path):
    resumed, uninterrupted, steps = stopped_and_resumed(tmp_path, (0, 1), module_class=NoisyModuleWithARunLongSchedule)

    assert steps == 2
    assert resumed.seen == uninterrupted.seen[2:]


@pytest.mark.skipif(not RESUMES_AFTER_THE_CHECKPOINTED_BATCH, reason="fixed in pytorch-lightning 2.5.0")
def test_with_gradient_accumulation_the_stop_waits_for_the_optimizer_step_and_the_resume_is_exact(tmp_path):
    resumed, uninterrupted, steps = stopped_and_resumed(tmp_path, (1, 0), accumulate_grad_batches=2)

    trained = len(uninterrupted.seen) - len(resumed.seen)
    assert trained == BATCHES + 2, "signalled in batch 0 of epoch 1, stopped after batch 1: its gradients stepped"
    assert steps == 2 + 1, "two optimizer steps per epoch of 3 batches (the last one alone)"
    assert resumed.seen == uninterrupted.seen[trained:]
    assert all(torch.equal(resumed.state_dict()[name], value) for name, value in uninterrupted.state_dict().items())
