"""The measuring harness: arms that take turns in lockstep, per-turn timing, per-round ratios with a bootstrap
interval, and the result table.

The machine this is meant for is small and shared (2 CPU cores, other jobs running), so every figure is a ratio or a
median measured within one run. The arms being compared run in lockstep: each arm is a thread, and the threads take
turns, one training step (or one transition) each, in an order shuffled every round. A burst of load from other
processes then hits all arms of a round alike and cancels in the per-round ratio; a figure is the median of those
ratios.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pytorch_lightning.callbacks import Callback
from torch.utils.data import TensorDataset


def silence() -> None:
    """Lightning's and transformers' info messages and the data loader warnings off: the output is the figures."""
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*LeafSpec.*", ".*num_workers.*"):
        warnings.filterwarnings("ignore", message=pattern)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


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


Arm = Callable[[Turn], Any]


def run_lockstep(
    arms: dict[str, Arm], threads: int, deadline: float | None = None, seed: int = 0
) -> tuple[dict[str, Turn], dict[str, Any]]:
    """Run each arm in its own thread, in lockstep; returns each arm's turns and what it returned."""
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


# ----------------------------------------------------------------------------------------------- blocks and ratios
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
    make_arms: Callable[[TensorDataset], dict[str, Arm]],
    train: TensorDataset,
    blocks: int,
    steps: int,
    warmup: int,
    budget_s: float,
    threads: int,
) -> list[dict[str, list[float]]]:
    """Run the arms in lockstep ``blocks`` times, each time with fresh threads, models and trainers (what one
    thread's memory arena or OpenMP team does to its arm is then not the same in every block), each block within
    its share of ``budget_s``. Returns, per block, each arm's timed step seconds (after ``warmup`` untimed ones),
    truncated to the same count."""
    budget = budget_s / blocks
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


def steps_per_s(group: str, blocks: list[dict[str, list[float]]]) -> dict[str, float]:
    """Each arm's speed: 1 / its median step time over all blocks, keyed ``group/arm``."""
    return {f"{group}/{name}": 1.0 / median([t for b in blocks for t in b[name]]) for name in blocks[0]}


# ----------------------------------------------------------------------------------------------- the table
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
