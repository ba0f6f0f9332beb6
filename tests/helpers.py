"""The two ways the tests reach the experiment layer, written once: compose a config with Hydra's compose API, and
run ``python -m ftexp`` in a subprocess exactly as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from ftexp.config import CONFIG_DIR


def short_demo(max_epochs: int) -> list[str]:
    """The demo cut short: ``max_epochs`` epochs of 4 training and 2 validation (and test) batches of a 256-example
    task, without progress bar, model summary or sanity check."""
    return [
        f"trainer.max_epochs={max_epochs}",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.num_sanity_val_steps=0",
        "data.synthetic.n_train=256",
        "data.synthetic.n_validation=64",
        "data.synthetic.n_test=64",
    ]


def compose_config(output_dir: Path | None, *overrides: str, hydra: bool = False) -> DictConfig:
    """The config ``python -m ftexp *overrides`` would run, writing under ``output_dir`` (``None``: the config's own
    ``paths.output_dir``); ``hydra=True`` keeps the ``hydra`` node, which the Hydra callbacks and launchers read.
    For example ``compose_config(tmp_path, "schedule=explicit").schedule.name == "explicit"``.
    """
    if output_dir is not None:
        overrides = (f"paths.output_dir={output_dir}", *overrides)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def python_m_ftexp(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    unset: Sequence[str] = (),
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``python -m ftexp *args`` in ``cwd`` with this interpreter and return what it printed (text).

    ``HYDRA_FULL_ERROR`` is left out of the environment, so errors read as a user sees them; ``env`` adds variables,
    ``unset`` leaves more out. ``timeout`` only guards against a hung run.
    """
    left_out = {"HYDRA_FULL_ERROR", *unset}
    environment = {k: v for k, v in os.environ.items() if k not in left_out} | dict(env or {})
    command = [sys.executable, "-m", "ftexp", *args]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


class SignalSelfAt(Callback):
    """Sends ``signum`` to this process before training batch ``batch`` of epoch ``epoch``, as SLURM would."""

    def __init__(self, signum: int, epoch: int, batch: int) -> None:
        self.signum, self.epoch, self.batch = signum, epoch, batch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), self.signum)


def signal_self_at(signum: int, epoch: int, batch: int) -> list[str]:
    """The command-line overrides that add :class:`SignalSelfAt` to a run's callbacks."""
    return [
        f"+callbacks.signal_self._target_={__name__}.SignalSelfAt",
        f"+callbacks.signal_self.signum={int(signum)}",
        f"+callbacks.signal_self.epoch={epoch}",
        f"+callbacks.signal_self.batch={batch}",
    ]
