"""Benchmark of ftexp's FinetuningScheduler: per-step overhead, phase-0 speed, transition latency, schedule generation.

Usage::

    python benchmarks/bench_engine.py            # full run, about 4-6 minutes on 2 CPU cores
    python benchmarks/bench_engine.py --quick    # smoke run, about 1 minute
    python benchmarks/bench_engine.py --json out.json

The machine this is meant for is small and shared (2 CPU cores, other jobs running), so every figure is a ratio or
a median measured within one run. The arms being compared run in lockstep: each arm is a thread, and the threads
take turns, one training step (or one transition) each, in an order shuffled every round. A burst of load from other
processes then hits all arms of a round alike and cancels in the per-round ratio; a figure is the median of those
ratios. benchmarks/README.md explains each figure.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ftexp
from ftexp import FinetuningScheduler, PhaseCheckpoint, generate_schedule

SEQ_LEN = 64
BATCH = 16
VOCAB = 1000
LR = 1e-3

# Figures 1 and 2 (groups "overhead" and "phase0"): *_blocks lockstep runs of *_steps timed rounds each (after
# `warmup` untimed ones); a block past its share of *_budget_s stops early, all arms alike. transition_reps:
# transition fits per restore mode; gen_reps: generate_schedule calls per mode.
SIZES = {
    "full": {
        "overhead_blocks": 8,
        "overhead_steps": 40,
        "overhead_budget_s": 170,
        "phase0_blocks": 5,
        "phase0_steps": 30,
        "phase0_budget_s": 75,
        "warmup": 3,
        "transition_reps": 3,
        "gen_reps": 7,
    },
    "quick": {
        "overhead_blocks": 3,
        "overhead_steps": 12,
        "overhead_budget_s": 20,
        "phase0_blocks": 2,
        "phase0_steps": 10,
        "phase0_budget_s": 12,
        "warmup": 3,
        "transition_reps": 1,
        "gen_reps": 3,
    },
}


# ----------------------------------------------------------------------------------------------- quiet Lightning
def silence() -> None:
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*LeafSpec.*", ".*num_workers.*"):
        warnings.filterwarnings("ignore", message=pattern)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


# ----------------------------------------------------------------------------------------------- model and data
def bert_config() -> Any:
    from transformers import BertConfig

    return BertConfig(
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
        vocab_size=VOCAB,
        max_position_embeddings=SEQ_LEN,
        num_labels=2,
    )


def make_template() -> nn.Module:
    """A randomly initialised BERT classifier; every arm trains a deep copy of it."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(bert_config())
    model.train()
    return model


def synthetic_tokens(n_batches: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n_batches * BATCH, SEQ_LEN), generator=generator)
    labels = torch.randint(0, 2, (n_batches * BATCH,), generator=generator)
    return TensorDataset(ids, labels)


def loader(data: TensorDataset) -> DataLoader:
    return DataLoader(data, batch_size=BATCH, shuffle=False, num_workers=0)


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    ids, labels = batch
    return nn.functional.cross_entropy(model(input_ids=ids).logits, labels)


class BertModule(pl.LightningModule):
    """The LightningModule every Lightning arm trains: the same forward/backward as the raw torch loop."""

    def __init__(self, model: nn.Module, train: TensorDataset, val: TensorDataset, lr_scheduler: bool = False) -> None:
        super().__init__()
        self.model = model
        self.train_data = train
        self.val_data = val
        self.use_lr_scheduler = lr_scheduler

    def training_step(self, batch, batch_idx):
        return classification_loss(self.model, batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", classification_loss(self.model, batch))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=LR)
        if not self.use_lr_scheduler:
            return optimizer
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def train_dataloader(self):
        return loader(self.train_data)

    def val_dataloader(self):
        return loader(self.val_data)


def make_trainer(root: str, callbacks: list[Callback], **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {
        "default_root_dir": root,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "enable_checkpointing": False,
    }
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ----------------------------------------------------------------------------------------------- lockstep
class Lockstep:
    """Arms run in threads that take turns in an order shuffled every round; only the turn holder runs.

    Running whole arms one after another leaves each at the mercy of whatever else the machine does during its few
    seconds (on a shared 2-core box with 2 torch threads, that swings an arm's speed by 2-5x). In lockstep, the
    steps of one round are a fraction of a second apart and see the same load.
    """

    def __init__(self, names: list[str], deadline: float | None = None, seed: int = 0) -> None:
        self.names = list(names)
        self.deadline = deadline
        self._done: set[str] = set()
        self._round = 0
        self._rng = random.Random(seed)
        self._queue = list(self.names)
        self._rng.shuffle(self._queue)
        self._cond = threading.Condition()

    def _advance(self) -> None:
        self._queue.pop(0)
        self._queue = [n for n in self._queue if n not in self._done]
        if not self._queue:
            self._round += 1
            self._queue = [n for n in self.names if n not in self._done]
            self._rng.shuffle(self._queue)

    def wait(self, name: str) -> None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._queue) and self._queue[0] == name)

    def pass_turn(self, name: str) -> None:
        with self._cond:
            assert self._queue and self._queue[0] == name, "an arm passed a turn it did not hold"
            self._advance()
            self._cond.notify_all()

    def finish(self, name: str) -> None:
        with self._cond:
            self._done.add(name)
            if self._queue and self._queue[0] == name:
                self._advance()
            self._cond.notify_all()


class Turn:
    """One arm's handle on the lockstep. Calling it ends the arm's turn, waits for the next, and returns whether
    the arm should stop (past the deadline: it then keeps the turn until it finishes, so it never runs alongside
    another arm). The time between getting a turn and passing it on is recorded per turn."""

    def __init__(self, lockstep: Lockstep, name: str) -> None:
        self.lockstep, self.name = lockstep, name
        self.seconds: list[float] = []
        self.threads: set[int] = set()
        self._resumed: float | None = None

    def __call__(self) -> bool:
        now = time.perf_counter()
        if self._resumed is not None:
            self.seconds.append(now - self._resumed)
        self.threads.add(torch.get_num_threads())
        if self.lockstep.deadline is not None and now > self.lockstep.deadline:
            return True
        self.lockstep.pass_turn(self.name)
        self.lockstep.wait(self.name)
        self._resumed = time.perf_counter()
        return False


def run_lockstep(
    arms: dict[str, Callable[[Turn], Any]], threads: int, deadline: float | None = None, seed: int = 0
) -> tuple[dict[str, Turn], dict[str, Any]]:
    lockstep = Lockstep(list(arms), deadline, seed)
    turns = {name: Turn(lockstep, name) for name in arms}
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def worker(name: str) -> None:
        torch.set_num_threads(threads)  # OpenMP's thread count is per calling thread
        lockstep.wait(name)
        try:
            gc.collect()
            results[name] = arms[name](turns[name])
        except BaseException as err:
            errors[name] = err
        finally:
            lockstep.finish(name)

    workers = [threading.Thread(target=worker, args=(name,), name=f"arm-{name}") for name in arms]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        name, err = next(iter(errors.items()))
        raise RuntimeError(f"arm {name} failed: {err!r}") from err
    for name, turn in turns.items():
        if turn.threads != {threads}:
            raise RuntimeError(f"arm {name} ran with torch threads {turn.threads}, not {threads}")
    return turns, results


class StepTurn(Callback):
    """Takes a turn at every ``on_train_batch_start``, so a step's time is everything from there to the next one:
    fetching the batch, every callback's batch hooks, forward, backward, optimizer step, Lightning's bookkeeping.
    Validation and epoch hooks are not timed (one epoch, the first step is setup's)."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.turn():
            trainer.should_stop = True


class EpochTurn(Callback):
    """Takes a turn at ``on_train_epoch_start`` (placed before and after the scheduler: a transition is one turn)."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.turn()


# ----------------------------------------------------------------------------------------------- figures 1 and 2
def lightning_arm(
    template: nn.Module,
    train: TensorDataset,
    val: TensorDataset,
    root: str,
    head_only: bool,
    make_scheduler: Callable[[], FinetuningScheduler] | None,
    check: Callable[[BertModule, FinetuningScheduler | None], None] | None = None,
) -> Callable[[Turn], None]:
    def run(turn: Turn) -> None:
        model = copy.deepcopy(template)
        if head_only:  # plain Lightning doing phase 0 by hand: freeze all but the classifier
            for name, param in model.named_parameters():
                param.requires_grad_(name.startswith("classifier."))
        module = BertModule(model, train, val)
        scheduler = make_scheduler() if make_scheduler is not None else None
        callbacks: list[Callback] = [StepTurn(turn)] + ([scheduler] if scheduler is not None else [])
        trainer = make_trainer(
            str(Path(root) / turn.name),
            callbacks,
            max_epochs=1,
            limit_train_batches=len(train) // BATCH,
            limit_val_batches=1,  # gives PhaseEarlyStopping its val_loss; validation is not timed
        )
        trainer.fit(module)
        if check is not None:
            check(module, scheduler)

    return run


def raw_head_arm(template: nn.Module, train: TensorDataset) -> Callable[[Turn], None]:
    """A hand-written torch loop doing what phase 0 does: only the classifier trains, AdamW on it."""

    def run(turn: Turn) -> None:
        model = copy.deepcopy(template)
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith("classifier."))
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
        for batch in loader(train):
            if turn():
                break
            loss = classification_loss(model, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    return run


def check_all_trainable(module: BertModule, scheduler: FinetuningScheduler | None) -> None:
    frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
    if frozen:
        raise RuntimeError(f"the 1-phase schedule left {len(frozen)} parameters frozen")


def check_phase0(module: BertModule, scheduler: FinetuningScheduler | None) -> None:
    assert scheduler is not None
    trainable = sorted(n for n, p in module.named_parameters() if p.requires_grad)
    if scheduler.curr_depth != 0 or trainable != ["model.classifier.bias", "model.classifier.weight"]:
        raise RuntimeError(f"phase 0 is not 'classifier only': depth {scheduler.curr_depth}, {trainable}")


def bootstrap_ci(per_block: list[list[float]], reps: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the pooled median from a two-level bootstrap: resample blocks, then rounds within each.

    Resampling blocks matters: an arm's speed shifts by a few percent from block to block (its thread's memory
    arena and OpenMP team), more than the round-to-round noise alone suggests."""
    rng = random.Random(seed)
    medians = []
    for _ in range(reps):
        pooled = []
        for block in rng.choices(per_block, k=len(per_block)):
            pooled.extend(rng.choices(block, k=len(block)))
        medians.append(median(pooled))
    medians.sort()
    return medians[int(0.025 * reps)], medians[int(0.975 * reps) - 1]


def lockstep_blocks(
    label: str,
    make_arms: Callable[[TensorDataset], dict[str, Callable[[Turn], Any]]],
    sizes: dict[str, Any],
    group: str,
    threads: int,
) -> list[dict[str, list[float]]]:
    """Run the arms in lockstep ``blocks`` times, each time with fresh threads, models and trainers (what one
    thread's memory arena or OpenMP team does to its arm is then not the same in every block). Returns, per block,
    each arm's timed step seconds, truncated to the same count."""
    blocks, steps, warmup = sizes[f"{group}_blocks"], sizes[f"{group}_steps"], sizes["warmup"]
    budget = sizes[f"{group}_budget_s"] / blocks
    train = synthetic_tokens(steps + warmup + 1, seed=1)
    out = []
    started = time.perf_counter()
    for block in range(blocks):
        turns, _ = run_lockstep(make_arms(train), threads, deadline=time.perf_counter() + budget, seed=block)
        seconds = {name: turn.seconds[warmup:] for name, turn in turns.items()}
        n = min(len(v) for v in seconds.values())
        if n < 3:
            raise RuntimeError(f"{label}: only {n} timed steps per arm within {budget:.0f} s")
        out.append({name: v[:n] for name, v in seconds.items()})
    counts = [len(next(iter(b.values()))) for b in out]
    short = " (some blocks stopped at their time budget)" if min(counts) < steps else ""
    print(
        f"  {label}: {len(out)} blocks x {len(make_arms(train))} arms, {sum(counts)} timed rounds in "
        f"{time.perf_counter() - started:.0f} s{short}",
        flush=True,
    )
    return out


def ratio_figure(blocks: list[dict[str, list[float]]], num: str, den: str) -> dict[str, Any]:
    """Speed of ``num`` over speed of ``den``: per round (= step time of den / step time of num), pooled."""
    per_block = [[d / m for m, d in zip(b[num], b[den], strict=True)] for b in blocks]
    pooled = [r for block in per_block for r in block]
    return {
        "median": median(pooled),
        "ci95": bootstrap_ci(per_block),
        "block_medians": [median(block) for block in per_block],
        "rounds": len(pooled),
    }


def bench_throughput(template: nn.Module, sizes: dict[str, Any], threads: int, root: str) -> dict[str, Any]:
    """Figures 1 and 2, as two lockstep groups (one training step per arm per round)."""
    val = synthetic_tokens(1, seed=2)

    def ftexp_full(train: TensorDataset) -> Callable[[Turn], None]:
        return lightning_arm(
            template,
            train,
            val,
            root,
            False,
            lambda: FinetuningScheduler({0: {"params": [".*"]}}, restore_best=False),
            check_all_trainable,
        )

    def overhead_arms(train: TensorDataset) -> dict[str, Callable[[Turn], Any]]:
        return {
            "plain_full": lightning_arm(template, train, val, root, False, None),
            "ftexp_full": ftexp_full(train),
            "plain_full_again": lightning_arm(template, train, val, root, False, None),  # A/A control
        }

    def phase0_arms(train: TensorDataset) -> dict[str, Callable[[Turn], Any]]:
        return {
            "raw_head": raw_head_arm(template, train),
            "plain_head": lightning_arm(template, train, val, root, True, None),
            "ftexp_phase0": lightning_arm(
                template,
                train,
                val,
                root,
                False,
                lambda: FinetuningScheduler(implicit_mode="blocks", restore_best=False),
                check_phase0,
            ),
            "ftexp_full": ftexp_full(train),
        }

    overhead = lockstep_blocks("figure 1 (all parameters trainable)", overhead_arms, sizes, "overhead", threads)
    phase0 = lockstep_blocks("figure 2 (phase 0: classifier only)", phase0_arms, sizes, "phase0", threads)
    figures = {
        "overhead_ratio": ratio_figure(overhead, "ftexp_full", "plain_full"),
        "control_ratio": ratio_figure(overhead, "plain_full_again", "plain_full"),
        "phase0_vs_raw": ratio_figure(phase0, "ftexp_phase0", "raw_head"),
        "plain_head_vs_raw": ratio_figure(phase0, "plain_head", "raw_head"),
        "phase0_vs_plain_head": ratio_figure(phase0, "ftexp_phase0", "plain_head"),
        "phase0_speedup": ratio_figure(phase0, "ftexp_phase0", "ftexp_full"),
    }
    steps_per_s = {}
    for group, blocks in (("overhead", overhead), ("phase0", phase0)):
        for name in blocks[0]:
            steps_per_s[f"{group}/{name}"] = 1.0 / median([t for b in blocks for t in b[name]])
    return {
        "ratios": figures,
        "steps_per_s": steps_per_s,
        "step_seconds": {"overhead": overhead, "phase0": phase0},
    }


# ----------------------------------------------------------------------------------------------- figure 3
TRANSITION_SCHEDULE = {
    0: {"params": [r"model\.classifier\."], "max_transition_epoch": 1},
    1: {"params": [r"model\.bert\.pooler\.", r"model\.bert\.encoder\.layer\.3\."], "max_transition_epoch": 2},
    2: {"params": [r"model\.bert\.encoder\.layer\.[12]\."], "max_transition_epoch": 3},
    3: {"params": [r"model\.bert\.encoder\.layer\.0\.", r"model\.bert\.embeddings\."]},
}


def nested_tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(nested_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(nested_tensor_bytes(v) for v in obj)
    return 0


class InstrumentedScheduler(FinetuningScheduler):
    """FinetuningScheduler that notes, outside the timed transition, what a restore will read: the in-memory
    snapshot's size and the best checkpoint file's size; and times the snapshot taken at each new best checkpoint
    (the cost the in-memory restore moves from the transition to checkpoint time)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.capture_seconds: list[float] = []
        self.restore_sources: list[dict[str, Any]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.restore_best and self._fit_start is not None and self._should_transition(trainer):
            snapshot, path = self._snapshot, self._best_path()
            self.restore_sources.append(
                {
                    "snapshot_depth": snapshot.depth if snapshot is not None else None,
                    "snapshot_nbytes": snapshot.nbytes if snapshot is not None else None,
                    "checkpoint_bytes": os.path.getsize(path) if path and os.path.isfile(path) else None,
                }
            )
        super().on_train_epoch_start(trainer, pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        before = self._snapshot
        started = time.perf_counter()
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._snapshot is not before:
            self.capture_seconds.append(time.perf_counter() - started)


class TimedCheckpoint(PhaseCheckpoint):
    """PhaseCheckpoint that times each checkpoint write (with ``memory`` restore, a write at a new best includes
    the snapshot capture)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.save_seconds: list[float] = []

    def _save_checkpoint(self, trainer, filepath) -> None:
        started = time.perf_counter()
        super()._save_checkpoint(trainer, filepath)
        self.save_seconds.append(time.perf_counter() - started)


def transition_arm(template: nn.Module, train: TensorDataset, val: TensorDataset, root: str, arm: str):
    def run(turn: Turn) -> dict[str, Any]:
        scheduler = InstrumentedScheduler(
            TRANSITION_SCHEDULE,
            restore_best=arm != "no_restore",
            restore_best_from="disk" if arm == "disk" else "memory",
            epoch_transitions_only=True,
        )
        checkpoint = TimedCheckpoint(dirpath=str(Path(root) / arm), save_last=True)
        module = BertModule(copy.deepcopy(template), train, val, lr_scheduler=True)
        trainer = make_trainer(
            str(Path(root) / arm),
            [EpochTurn(turn), scheduler, EpochTurn(turn), checkpoint],
            max_epochs=len(TRANSITION_SCHEDULE),
            limit_train_batches=len(train) // BATCH,
            limit_val_batches=len(val) // BATCH,
            enable_checkpointing=True,
        )
        trainer.fit(module)
        if len(scheduler.transitions) != len(TRANSITION_SCHEDULE) - 1:
            raise RuntimeError(f"{arm}: expected {len(TRANSITION_SCHEDULE) - 1} transitions: {scheduler.transitions}")
        snapshot = scheduler._snapshot
        return {
            "ms": [t["seconds"] * 1e3 for t in scheduler.transitions],
            "restored_from": [t["restored_from_depth"] for t in scheduler.transitions],
            "capture_ms": [s * 1e3 for s in scheduler.capture_seconds],
            "save_ms": [s * 1e3 for s in checkpoint.save_seconds],
            "restore_sources": scheduler.restore_sources,
            "after_fit": {
                "snapshot_depth": snapshot.depth if snapshot is not None else None,
                "snapshot_nbytes": snapshot.nbytes if snapshot is not None else None,
                "checkpoint_bytes": (
                    os.path.getsize(checkpoint.best_model_path) if checkpoint.best_model_path else None
                ),
            },
            "final_state": {k: v.detach().clone() for k, v in module.state_dict().items()},
        }

    return run


def bench_transitions(template: nn.Module, sizes: dict[str, Any], threads: int, root: str) -> dict[str, Any]:
    """Figure 3: a 4-phase fit with 3 forced transitions (max_transition_epoch); the three restore modes run in
    lockstep, so the same transition of the three arms happens back to back."""
    template = copy.deepcopy(template)
    for layer in template.modules():  # no dropout: memory and disk arms must train identically though interleaved
        if isinstance(layer, nn.Dropout):
            layer.p = 0.0
    train = synthetic_tokens(2, seed=3)
    val = synthetic_tokens(1, seed=4)
    arms = ["no_restore", "memory", "disk"]
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    for r in range(sizes["transition_reps"]):
        rep_root = str(Path(root) / f"transitions{r}")
        _, results = run_lockstep({a: transition_arm(template, train, val, rep_root, a) for a in arms}, threads, seed=r)
        for a in arms:
            runs[a].append(results[a])
        shown = "  ".join(f"{a} [{', '.join(f'{ms:.1f}' for ms in results[a]['ms'])}]" for a in arms)
        print(f"  fit {r + 1}/{sizes['transition_reps']}, transition ms: {shown}", flush=True)
    diffs = [
        max((mem["final_state"][k] - disk["final_state"][k]).abs().max().item() for k in mem["final_state"])
        for mem, disk in zip(runs["memory"], runs["disk"], strict=True)
    ]
    ms = {a: [m for run in runs[a] for m in run["ms"]] for a in arms}
    per_transition_ratio = [
        d / m
        for mem, disk in zip(runs["memory"], runs["disk"], strict=True)
        for m, d in zip(mem["ms"], disk["ms"], strict=True)
    ]
    for run in (*runs["memory"], *runs["disk"], *runs["no_restore"]):
        del run["final_state"]
    return {
        "median_ms": {a: median(ms[a]) for a in arms},
        "all_ms": ms,
        "disk_over_memory": median(per_transition_ratio),
        "disk_over_memory_per_transition": per_transition_ratio,
        "restored_from": {a: [run["restored_from"] for run in runs[a]] for a in arms},
        "restore_sources_memory": runs["memory"][-1]["restore_sources"],
        "restore_sources_disk": runs["disk"][-1]["restore_sources"],
        "after_fit_memory": runs["memory"][-1]["after_fit"],
        "snapshot_capture_ms": [c for run in runs["memory"] for c in run["capture_ms"]],
        "checkpoint_save_median_ms": {a: median([c for run in runs[a] for c in run["save_ms"]]) for a in arms},
        "memory_vs_disk_final_weight_maxdiff": max(diffs),
        "model_param_bytes": sum(p.numel() * p.element_size() for p in template.parameters()),
    }


# ----------------------------------------------------------------------------------------------- figure 4
def deberta_v3_large_config() -> Any:
    from transformers import DebertaV2Config

    return DebertaV2Config(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        vocab_size=128100,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        position_buckets=256,
        share_att_key=True,
        max_relative_positions=-1,
    )


def bench_generation(sizes: dict[str, Any]) -> dict[str, Any]:
    """Figure 4: implicit schedules for a deberta-v3-large-sized classifier built on the meta device."""
    from transformers import AutoModelForSequenceClassification

    config = deberta_v3_large_config()
    started = time.perf_counter()
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    build_s = time.perf_counter() - started
    out: dict[str, Any] = {
        "build_meta_s": build_s,
        "model_params": sum(p.numel() for p in model.parameters()),
        "param_tensors": len(list(model.parameters())),
    }
    times: dict[str, list[float]] = {"blocks": [], "naive": []}
    phases: dict[str, int] = {}
    for _ in range(sizes["gen_reps"]):
        for mode in times:  # interleaved
            started = time.perf_counter()
            schedule = generate_schedule(model, mode)
            times[mode].append(time.perf_counter() - started)
            phases[mode] = len(schedule.phases)
    for mode, values in times.items():
        out[mode] = {"median_s": median(values), "all_s": values, "phases": phases[mode]}
    return out


# ----------------------------------------------------------------------------------------------- report
@dataclass
class Row:
    label: str
    shown: str
    goal: str | None = None
    value: float | None = None
    ci: tuple[float, float] | None = None

    @property
    def result(self) -> str:
        return verdict(self.value, self.goal, self.ci)


def meets(value: float, goal: str) -> bool:
    op, bound = goal.split()
    return value >= float(bound) if op == ">=" else value < float(bound)


def verdict(value: float | None, goal: str | None, ci: tuple[float, float] | None = None) -> str:
    """PASS/MISS on the median; "(CI spans goal)" when the 95% interval lies on both sides of the goal."""
    if goal is None or value is None or value != value:  # no goal, or NaN
        return "-"
    result = "PASS" if meets(value, goal) else "MISS"
    if ci is not None and meets(ci[0], goal) != meets(ci[1], goal):
        result += " (CI spans goal)"
    return result


def table(rows: list[Row]) -> str:
    lines = [f"{'figure':<54} {'value':>22}  {'goal':>8}  result", "-" * 110]
    for row in rows:
        lines.append(f"{row.label:<54} {row.shown:>22}  {row.goal or '-':>8}  {row.result}")
    return "\n".join(lines)


def with_ci(fig: dict[str, Any], suffix: str = "") -> str:
    return f"{fig['median']:.3f}{suffix} [{fig['ci95'][0]:.3f},{fig['ci95'][1]:.3f}]"


def report_rows(thr: dict[str, Any], trans: dict[str, Any], gen: dict[str, Any]) -> list[Row]:
    r = thr["ratios"]
    sources = trans["restore_sources_memory"]
    fractions = "/".join(
        f"{s['snapshot_nbytes'] / s['checkpoint_bytes']:.2f}"
        if s["snapshot_nbytes"] and s["checkpoint_bytes"]
        else "n/a"
        for s in sources
    )
    after = trans["after_fit_memory"]
    snap, ckpt = after["snapshot_nbytes"], after["checkpoint_bytes"]
    blocks, naive = gen["blocks"], gen["naive"]
    overhead = r["overhead_ratio"]
    return [
        Row(
            "1  ftexp / plain Lightning steps/s, all params",
            with_ci(overhead),
            ">= 0.99",
            overhead["median"],
            overhead["ci95"],
        ),
        Row("1  (A/A control: plain / plain Lightning)", with_ci(r["control_ratio"])),
        Row("2  phase-0 ftexp / raw torch loop steps/s", with_ci(r["phase0_vs_raw"])),
        Row("2  (plain Lightning, head frozen by hand / raw)", with_ci(r["plain_head_vs_raw"])),
        Row("2  phase-0 / full-model steps/s (ftexp)", f"{r['phase0_speedup']['median']:.2f}x"),
        Row("3  transition ms, restore_best=False", f"{trans['median_ms']['no_restore']:.1f}"),
        Row("3  transition ms, restore_best from memory", f"{trans['median_ms']['memory']:.1f}"),
        Row("3  transition ms, restore_best from disk", f"{trans['median_ms']['disk']:.1f}"),
        Row("3  transition disk / memory (paired)", f"{trans['disk_over_memory']:.2f}x"),
        Row("3  snapshot.nbytes / ckpt file, transitions 1/2/3", fractions),
        Row("3  snapshot.nbytes after fit", f"{snap:,} B" if snap else "n/a"),
        Row("3  best checkpoint file after fit", f"{ckpt:,} B" if ckpt else "n/a"),
        Row("3  snapshot.nbytes / ckpt file after fit", f"{snap / ckpt:.3f}" if snap and ckpt else "n/a"),
        Row("4  build deberta-v3-large on meta (s)", f"{gen['build_meta_s']:.2f}"),
        Row(
            f"4  generate_schedule blocks, {blocks['phases']} phases (s)",
            f"{blocks['median_s']:.4f}",
            "< 0.1",
            blocks["median_s"],
        ),
        Row(
            f"4  generate_schedule naive, {naive['phases']} phases (s)",
            f"{naive['median_s']:.4f}",
            "< 0.1",
            naive["median_s"],
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 min)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every arm (default 2)")
    args = parser.parse_args()
    silence()
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    print(
        f"ftexp {ftexp.__version__} | torch {torch.__version__} | pytorch-lightning {pl.__version__} | "
        f"threads {args.threads} | cpus {os.cpu_count()} | {mode} run",
        flush=True,
    )
    template = make_template()
    n_params = sum(p.numel() for p in template.parameters())
    print(f"model: BERT classifier, hidden 128, 4 layers, {n_params:,} parameters; batch {BATCH} x {SEQ_LEN} tokens")

    with tempfile.TemporaryDirectory(prefix="ftexp_bench_") as root:
        print("\n[1+2] training-step throughput: arms in lockstep, one step each per round", flush=True)
        thr = bench_throughput(template, sizes, args.threads, root)
        print("\n[3] transition latency: 4 phases, 3 forced transitions per fit, restore modes in lockstep", flush=True)
        trans = bench_transitions(template, sizes, args.threads, root)
    print("\n[4] implicit schedule generation, deberta-v3-large on the meta device", flush=True)
    gen = bench_generation(sizes)
    elapsed = time.perf_counter() - began

    r = thr["ratios"]
    print("\nsteps/s (1 / median step time): " + ", ".join(f"{k} {v:.2f}" for k, v in thr["steps_per_s"].items()))
    for key, fig in r.items():
        print(
            f"{key}: median {fig['median']:.3f}, 95% CI {fig['ci95'][0]:.3f}..{fig['ci95'][1]:.3f} over "
            f"{fig['rounds']} rounds; block medians {', '.join(f'{b:.3f}' for b in fig['block_medians'])}"
        )
    print(
        "restored from depth: "
        + "; ".join(f"{a} {v}" for a, v in trans["restored_from"].items() if a != "no_restore")
        + "; snapshot captures at new bests: "
        + ", ".join(f"{c:.1f}" for c in trans["snapshot_capture_ms"])
        + " ms"
    )
    saves = trans["checkpoint_save_median_ms"]
    print(
        "checkpoint write, median ms: "
        + ", ".join(f"{a} {v:.1f}" for a, v in saves.items())
        + " (memory: includes the snapshot capture at new bests)"
    )
    for s in trans["restore_sources_memory"]:
        print(
            f"  restore of depth {s['snapshot_depth']}: snapshot {s['snapshot_nbytes']:,} B (weights, buffers, "
            f"optimizer and scheduler state), checkpoint file {s['checkpoint_bytes']:,} B"
        )
    print(f"memory vs disk restore, max |final weight difference|: {trans['memory_vs_disk_final_weight_maxdiff']:.3g}")
    print(
        f"deberta-v3-large on meta: {gen['model_params']:,} parameters in {gen['param_tensors']} tensors; "
        f"generate_schedule runs (ms): blocks {', '.join(f'{t * 1e3:.1f}' for t in gen['blocks']['all_s'])}; "
        f"naive {', '.join(f'{t * 1e3:.1f}' for t in gen['naive']['all_s'])}"
    )
    rows = report_rows(thr, trans, gen)
    print()
    print(table(rows))
    print(f"\ntotal runtime {elapsed:.0f} s")

    if args.json:
        payload = {
            "date": datetime.date.today().isoformat(),
            "mode": mode,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pytorch_lightning": pl.__version__,
            "ftexp": ftexp.__version__,
            "runtime_s": elapsed,
            "table": [{"figure": r.label, "value": r.shown, "goal": r.goal, "result": r.result} for r in rows],
            "throughput": thr,
            "transitions": trans,
            "generation": gen,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
