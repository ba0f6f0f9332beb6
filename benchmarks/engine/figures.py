"""One function per figure of the engine benchmark, what each prints beyond the table, and the table's rows.

Everything read from the scheduler is public: ``transitions`` (each record's ``seconds``, ``restored_from_depth``
and ``restore``: the source, depth and bytes a restore read) and ``best_snapshots`` (each in-memory capture's depth,
bytes and seconds). benchmarks/README.md explains each figure.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.callbacks import Callback
from torch import nn
from torch.utils.data import TensorDataset

from ftexp import FinetuningScheduler, PhaseCheckpoint, generate_schedule

from .fixtures import (
    BATCH,
    LR,
    BertModule,
    classification_loss,
    deberta_v3_large_config,
    loader,
    make_trainer,
    synthetic_tokens,
    without_dropout,
)
from .harness import (
    Arm,
    EpochTurn,
    Row,
    StepTurn,
    Turn,
    lockstep_blocks,
    median,
    ratio_figure,
    run_lockstep,
    steps_per_s,
    with_ci,
)


# ----------------------------------------------------------------------------------------------- arms of 1 and 2
def lightning_arm(
    template: nn.Module,
    train: TensorDataset,
    val: TensorDataset,
    root: str,
    head_only: bool,
    make_scheduler: Callable[[], FinetuningScheduler] | None,
    check: Callable[[BertModule, FinetuningScheduler | None], None] | None = None,
) -> Arm:
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


def raw_head_arm(template: nn.Module, train: TensorDataset) -> Arm:
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


def ftexp_full_arm(template: nn.Module, train: TensorDataset, val: TensorDataset, root: str) -> Arm:
    """ftexp training every parameter: a one-phase schedule of everything, no restore."""
    return lightning_arm(
        template,
        train,
        val,
        root,
        False,
        lambda: FinetuningScheduler({0: {"params": [".*"]}}, restore_best=False),
        check_all_trainable,
    )


def throughput_blocks(
    label: str, make_arms: Callable[[TensorDataset], dict[str, Arm]], sizes: dict[str, Any], group: str, threads: int
) -> list[dict[str, list[float]]]:
    """One lockstep group of figure 1 or 2: ``{group}_blocks`` blocks of ``{group}_steps`` timed rounds each."""
    steps, warmup = sizes[f"{group}_steps"], sizes["warmup"]
    train = synthetic_tokens(steps + warmup + 1, seed=1)
    return lockstep_blocks(
        label, make_arms, train, sizes[f"{group}_blocks"], steps, warmup, sizes[f"{group}_budget_s"], threads
    )


# ----------------------------------------------------------------------------------------------- figure 1
def figure_1_overhead(template: nn.Module, sizes: dict[str, Any], threads: int, root: str) -> dict[str, Any]:
    """ftexp / plain Lightning steps/s with every parameter trainable (the callback's per-step cost), and the A/A
    control: plain Lightning against a second, identical plain Lightning arm."""
    val = synthetic_tokens(1, seed=2)

    def arms(train: TensorDataset) -> dict[str, Arm]:
        return {
            "plain_full": lightning_arm(template, train, val, root, False, None),
            "ftexp_full": ftexp_full_arm(template, train, val, root),
            "plain_full_again": lightning_arm(template, train, val, root, False, None),  # A/A control
        }

    blocks = throughput_blocks("figure 1 (all parameters trainable)", arms, sizes, "overhead", threads)
    return {
        "ratios": {
            "overhead_ratio": ratio_figure(blocks, "ftexp_full", "plain_full"),
            "control_ratio": ratio_figure(blocks, "plain_full_again", "plain_full"),
        },
        "steps_per_s": steps_per_s("overhead", blocks),
        "step_seconds": blocks,
    }


# ----------------------------------------------------------------------------------------------- figure 2
def figure_2_phase0(template: nn.Module, sizes: dict[str, Any], threads: int, root: str) -> dict[str, Any]:
    """Phase-0 ftexp (classifier only) against a raw torch loop training the head, plain Lightning with the head
    frozen by hand, and ftexp training the full model."""
    val = synthetic_tokens(1, seed=2)

    def arms(train: TensorDataset) -> dict[str, Arm]:
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
            "ftexp_full": ftexp_full_arm(template, train, val, root),
        }

    blocks = throughput_blocks("figure 2 (phase 0: classifier only)", arms, sizes, "phase0", threads)
    return {
        "ratios": {
            "phase0_vs_raw": ratio_figure(blocks, "ftexp_phase0", "raw_head"),
            "plain_head_vs_raw": ratio_figure(blocks, "plain_head", "raw_head"),
            "phase0_vs_plain_head": ratio_figure(blocks, "ftexp_phase0", "plain_head"),
            "phase0_speedup": ratio_figure(blocks, "ftexp_phase0", "ftexp_full"),
        },
        "steps_per_s": steps_per_s("phase0", blocks),
        "step_seconds": blocks,
    }


# ----------------------------------------------------------------------------------------------- figure 3
TRANSITION_SCHEDULE = {
    0: {"params": [r"model\.classifier\."], "max_transition_epoch": 1},
    1: {"params": [r"model\.bert\.pooler\.", r"model\.bert\.encoder\.layer\.3\."], "max_transition_epoch": 2},
    2: {"params": [r"model\.bert\.encoder\.layer\.[12]\."], "max_transition_epoch": 3},
    3: {"params": [r"model\.bert\.encoder\.layer\.0\.", r"model\.bert\.embeddings\."]},
}
RESTORE_ARMS = ("no_restore", "memory", "disk")


class TimedCheckpoint(PhaseCheckpoint):
    """PhaseCheckpoint that times each checkpoint write (with ``memory`` restore, a write at a new best includes
    the snapshot capture). ``_save_checkpoint``, ModelCheckpoint's write of one file, is Lightning-internal (checked
    against pytorch-lightning 2.6.6); tests/test_bench_engine.py fails if it is no longer called."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.save_seconds: list[float] = []

    def _save_checkpoint(self, trainer, filepath) -> None:
        started = time.perf_counter()
        super()._save_checkpoint(trainer, filepath)
        self.save_seconds.append(time.perf_counter() - started)


def transition_arm(template: nn.Module, train: TensorDataset, val: TensorDataset, root: str, arm: str) -> Arm:
    def run(turn: Turn) -> dict[str, Any]:
        scheduler = FinetuningScheduler(
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
        last_snapshot = scheduler.best_snapshots[-1] if scheduler.best_snapshots else None
        return {
            "ms": [t["seconds"] * 1e3 for t in scheduler.transitions],
            "restored_from": [t["restored_from_depth"] for t in scheduler.transitions],
            "restores": [t["restore"] for t in scheduler.transitions],
            "capture_ms": [s["seconds"] * 1e3 for s in scheduler.best_snapshots],
            "save_ms": [s * 1e3 for s in checkpoint.save_seconds],
            "after_fit": {
                "snapshot_depth": last_snapshot["depth"] if last_snapshot else None,
                "snapshot_nbytes": last_snapshot["bytes"] if last_snapshot else None,
                "checkpoint_bytes": (
                    os.path.getsize(checkpoint.best_model_path) if checkpoint.best_model_path else None
                ),
            },
            "final_state": {k: v.detach().clone() for k, v in module.state_dict().items()},
        }

    return run


def paired_restore_sizes(memory: dict[str, Any], disk: dict[str, Any]) -> list[dict[str, Any]]:
    """Per transition, what the memory arm's restore read (the snapshot) beside what the disk arm's read (the best
    checkpoint file): the two arms train identically, so they restore the same best state."""
    return [
        {
            "snapshot_depth": m["depth"] if m else None,
            "snapshot_nbytes": m["bytes"] if m and m["source"] == "memory" else None,
            "checkpoint_bytes": d["bytes"] if d and d["source"] == "disk" else None,
        }
        for m, d in zip(memory["restores"], disk["restores"], strict=True)
    ]


def figure_3_transitions(template: nn.Module, sizes: dict[str, Any], threads: int, root: str) -> dict[str, Any]:
    """Transition latency: a 4-phase fit with 3 forced transitions (max_transition_epoch); the three restore modes
    run in lockstep, so the same transition of the three arms happens back to back."""
    template = without_dropout(template)  # memory and disk arms must train identically though interleaved
    train = synthetic_tokens(2, seed=3)
    val = synthetic_tokens(1, seed=4)
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in RESTORE_ARMS}
    for r in range(sizes["transition_reps"]):
        rep_root = str(Path(root) / f"transitions{r}")
        arms = {a: transition_arm(template, train, val, rep_root, a) for a in RESTORE_ARMS}
        _, results = run_lockstep(arms, threads, seed=r)
        for a in RESTORE_ARMS:
            runs[a].append(results[a])
        shown = "  ".join(f"{a} [{', '.join(f'{ms:.1f}' for ms in results[a]['ms'])}]" for a in RESTORE_ARMS)
        print(f"  fit {r + 1}/{sizes['transition_reps']}, transition ms: {shown}", flush=True)
    diffs = [
        max((mem["final_state"][k] - disk["final_state"][k]).abs().max().item() for k in mem["final_state"])
        for mem, disk in zip(runs["memory"], runs["disk"], strict=True)
    ]
    ms = {a: [m for run in runs[a] for m in run["ms"]] for a in RESTORE_ARMS}
    per_transition_ratio = [
        d / m
        for mem, disk in zip(runs["memory"], runs["disk"], strict=True)
        for m, d in zip(mem["ms"], disk["ms"], strict=True)
    ]
    for run in (run for a in RESTORE_ARMS for run in runs[a]):
        del run["final_state"]
    return {
        "median_ms": {a: median(ms[a]) for a in RESTORE_ARMS},
        "all_ms": ms,
        "disk_over_memory": median(per_transition_ratio),
        "disk_over_memory_per_transition": per_transition_ratio,
        "restored_from": {a: [run["restored_from"] for run in runs[a]] for a in RESTORE_ARMS},
        "restores": {a: runs[a][-1]["restores"] for a in RESTORE_ARMS},
        "restore_sources_memory": paired_restore_sizes(runs["memory"][-1], runs["disk"][-1]),
        "after_fit_memory": runs["memory"][-1]["after_fit"],
        "snapshot_capture_ms": [c for run in runs["memory"] for c in run["capture_ms"]],
        "checkpoint_save_median_ms": {a: median([c for run in runs[a] for c in run["save_ms"]]) for a in RESTORE_ARMS},
        "memory_vs_disk_final_weight_maxdiff": max(diffs),
        "model_param_bytes": sum(p.numel() * p.element_size() for p in template.parameters()),
    }


# ----------------------------------------------------------------------------------------------- figure 4
def figure_4_generation(sizes: dict[str, Any]) -> dict[str, Any]:
    """Implicit schedules (blocks and naive, interleaved calls) for a deberta-v3-large-sized classifier built on the
    meta device."""
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
def print_details(fig1: dict[str, Any], fig2: dict[str, Any], trans: dict[str, Any], gen: dict[str, Any]) -> None:
    """What the run measured beyond the table: speeds, every ratio's spread, restores, captures and writes."""
    speeds = {**fig1["steps_per_s"], **fig2["steps_per_s"]}
    print("\nsteps/s (1 / median step time): " + ", ".join(f"{k} {v:.2f}" for k, v in speeds.items()))
    for key, fig in {**fig1["ratios"], **fig2["ratios"]}.items():
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
            f"  restore of depth {s['snapshot_depth']}: snapshot {_bytes(s['snapshot_nbytes'])} (weights, buffers, "
            f"optimizer and scheduler state), checkpoint file {_bytes(s['checkpoint_bytes'])}"
        )
    print(f"memory vs disk restore, max |final weight difference|: {trans['memory_vs_disk_final_weight_maxdiff']:.3g}")
    print(
        f"deberta-v3-large on meta: {gen['model_params']:,} parameters in {gen['param_tensors']} tensors; "
        f"generate_schedule runs (ms): blocks {', '.join(f'{t * 1e3:.1f}' for t in gen['blocks']['all_s'])}; "
        f"naive {', '.join(f'{t * 1e3:.1f}' for t in gen['naive']['all_s'])}"
    )


def _bytes(n: int | None) -> str:
    return f"{n:,} B" if n else "n/a"


def report_rows(fig1: dict[str, Any], fig2: dict[str, Any], trans: dict[str, Any], gen: dict[str, Any]) -> list[Row]:
    r = {**fig1["ratios"], **fig2["ratios"]}
    fractions = "/".join(
        f"{s['snapshot_nbytes'] / s['checkpoint_bytes']:.2f}"
        if s["snapshot_nbytes"] and s["checkpoint_bytes"]
        else "n/a"
        for s in trans["restore_sources_memory"]
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
        Row("3  snapshot.nbytes after fit", _bytes(snap)),
        Row("3  best checkpoint file after fit", _bytes(ckpt)),
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
