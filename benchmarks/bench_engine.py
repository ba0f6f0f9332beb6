"""Benchmark of ftexp's FinetuningScheduler: per-step overhead, phase-0 speed, transition latency, schedule generation.

Usage::

    python benchmarks/bench_engine.py            # full run, about 4-6 minutes on 2 CPU cores
    python benchmarks/bench_engine.py --quick    # short run, about 1 minute
    python benchmarks/bench_engine.py --smoke    # every figure once, tiny sizes (the test suite runs this)
    python benchmarks/bench_engine.py --json out.json

Every figure is a ratio or a median measured within one run, the arms compared running in lockstep
(benchmarks/engine/harness.py); the models and data are in benchmarks/engine/fixtures.py, one function per figure in
benchmarks/engine/figures.py. benchmarks/README.md explains each figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from engine.figures import (
    figure_1_overhead,
    figure_2_phase0,
    figure_3_transitions,
    figure_4_generation,
    print_details,
    report_rows,
)
from engine.fixtures import BATCH, SEQ_LEN, make_template
from engine.harness import silence, table

import ftexp

# Figures 1 and 2 (groups "overhead" and "phase0"): *_blocks lockstep runs of *_steps timed rounds each (after
# `warmup` untimed ones); a block past its share of *_budget_s stops early, all arms alike. transition_reps:
# transition fits per restore mode; gen_reps: generate_schedule calls per mode. "smoke" runs every figure once at
# the smallest sizes that still give each figure a value: it checks the benchmark runs, its numbers mean little.
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
    "smoke": {
        "overhead_blocks": 1,
        "overhead_steps": 3,
        "overhead_budget_s": 60,
        "phase0_blocks": 1,
        "phase0_steps": 3,
        "phase0_budget_s": 60,
        "warmup": 1,
        "transition_reps": 1,
        "gen_reps": 1,
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short run (~1 min)")
    size.add_argument("--smoke", action="store_true", help="every figure once at tiny sizes (the test suite's run)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every arm (default 2)")
    args = parser.parse_args()
    silence()
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
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
        fig1 = figure_1_overhead(template, sizes, args.threads, root)
        fig2 = figure_2_phase0(template, sizes, args.threads, root)
        print("\n[3] transition latency: 4 phases, 3 forced transitions per fit, restore modes in lockstep", flush=True)
        trans = figure_3_transitions(template, sizes, args.threads, root)
    print("\n[4] implicit schedule generation, deberta-v3-large on the meta device", flush=True)
    gen = figure_4_generation(sizes)
    elapsed = time.perf_counter() - began

    print_details(fig1, fig2, trans, gen)
    rows = report_rows(fig1, fig2, trans, gen)
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
            "throughput": {
                "ratios": {**fig1["ratios"], **fig2["ratios"]},
                "steps_per_s": {**fig1["steps_per_s"], **fig2["steps_per_s"]},
                "step_seconds": {"overhead": fig1["step_seconds"], "phase0": fig2["step_seconds"]},
            },
            "transitions": trans,
            "generation": gen,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
