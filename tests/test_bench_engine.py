"""The engine benchmark (benchmarks/bench_engine.py) runs end to end and prints every figure of its table.

Its ``--smoke`` size runs each figure once at the smallest sizes; the numbers of such a run mean little, so this
checks the shape of what it prints and writes, never a value."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_engine.py"

RATIO_WITH_CI = r"\d+\.\d{3} \[\d+\.\d{3},\d+\.\d{3}\]"
NUMBER = r"\d+\.\d+"
TIMES = r"\d+\.\d\dx"
BYTES = r"[\d,]+ B"
GOAL_RESULT = r"(PASS|MISS)( \(CI spans goal\))?"
# label (a regex), value, goal: the table's rows in order
ROWS = [
    (r"1  ftexp / plain Lightning steps/s, all params", RATIO_WITH_CI, ">= 0.99"),
    (r"1  \(A/A control: plain / plain Lightning\)", RATIO_WITH_CI, None),
    (r"2  phase-0 ftexp / raw torch loop steps/s", RATIO_WITH_CI, None),
    (r"2  \(plain Lightning, head frozen by hand / raw\)", RATIO_WITH_CI, None),
    (r"2  phase-0 / full-model steps/s \(ftexp\)", TIMES, None),
    (r"3  transition ms, restore_best=False", NUMBER, None),
    (r"3  transition ms, restore_best from memory", NUMBER, None),
    (r"3  transition ms, restore_best from disk", NUMBER, None),
    (r"3  transition disk / memory \(paired\)", TIMES, None),
    (r"3  snapshot\.nbytes / ckpt file, transitions 1/2/3", r"\d\.\d\d/\d\.\d\d/\d\.\d\d", None),
    (r"3  snapshot\.nbytes after fit", BYTES, None),
    (r"3  best checkpoint file after fit", BYTES, None),
    (r"3  snapshot\.nbytes / ckpt file after fit", NUMBER, None),
    (r"4  build deberta-v3-large on meta \(s\)", NUMBER, None),
    (r"4  generate_schedule blocks, \d+ phases \(s\)", NUMBER, "< 0.1"),
    (r"4  generate_schedule naive, \d+ phases \(s\)", NUMBER, "< 0.1"),
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench") / "figures.json"
    command = [sys.executable, str(SCRIPT), "--smoke", "--threads", "1", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout, json.loads(out.read_text())


@pytest.mark.slow
def test_the_smoke_run_prints_the_table_with_every_figure_in_order(smoke_run):
    printed, _ = smoke_run
    lines = printed.splitlines()
    start = lines.index("-" * 110) + 1
    table = lines[start : start + len(ROWS)]
    assert lines[start - 2].split() == ["figure", "value", "goal", "result"]
    for line, (label, value, goal) in zip(table, ROWS, strict=True):
        shown_goal, result = (re.escape(goal), GOAL_RESULT) if goal else ("-", "-")
        assert re.fullmatch(rf"{label} +{value}  +{shown_goal}  {result}", line), line
    assert lines[start + len(ROWS)] == ""
    assert re.search(r"^total runtime \d+ s$", printed, re.MULTILINE)


@pytest.mark.slow
def test_the_smoke_run_prints_each_figures_details(smoke_run):
    printed, _ = smoke_run
    assert re.search(r"^  figure 1 \(all parameters trainable\): 1 blocks x 3 arms, \d+ timed rounds", printed, re.M)
    assert re.search(r"^  figure 2 \(phase 0: classifier only\): 1 blocks x 4 arms, \d+ timed rounds", printed, re.M)
    three_ms = r"\[\d+\.\d, \d+\.\d, \d+\.\d\]"
    assert re.search(
        rf"^  fit 1/1, transition ms: no_restore {three_ms}  memory {three_ms}  disk {three_ms}$", printed, re.M
    )
    restores = re.findall(r"^  restore of depth \d: snapshot ([\d,]+) B .*, checkpoint file ([\d,]+) B$", printed, re.M)
    assert len(restores) == 3, "one line per transition, both sizes known"
    assert re.search(r"^memory vs disk restore, max \|final weight difference\|: \S+$", printed, re.M)


@pytest.mark.slow
def test_the_json_holds_the_table_and_each_restore_record_names_its_source(smoke_run):
    printed, figures = smoke_run
    assert figures["mode"] == "smoke"
    assert [row["figure"] for row in figures["table"]] == [
        line[:54].rstrip() for line in printed.splitlines() if re.match(r"^[1-4]  ", line)
    ]
    assert set(figures["throughput"]["ratios"]) == {
        "overhead_ratio",
        "control_ratio",
        "phase0_vs_raw",
        "plain_head_vs_raw",
        "phase0_vs_plain_head",
        "phase0_speedup",
    }
    restores = figures["transitions"]["restores"]
    assert restores["no_restore"] == [None, None, None]
    for source in ("memory", "disk"):
        assert [(r["source"], sorted(r)) for r in restores[source]] == [(source, ["bytes", "depth", "source"])] * 3
    assert figures["transitions"]["snapshot_capture_ms"], "memory restores take a snapshot at each new best"
    writes = figures["transitions"]["checkpoint_save_median_ms"]
    assert sorted(writes) == ["disk", "memory", "no_restore"]
    assert all(math.isfinite(ms) for ms in writes.values()), "ModelCheckpoint._save_checkpoint was timed"
