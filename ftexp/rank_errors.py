"""Which rank of a multi-process run failed first, for the run's ``result.json``.

When one rank of a DDP run raises, the others fail next, in their following collective, with an error about the
connection ("Connection closed by peer" under gloo). Rank 0, the only rank that writes ``result.json``, would then
report that consequence instead of the cause. So every other rank that fails leaves its error in the run dir
(``.rank_errors/rank<N>.json``, before its process exits and closes its connections), and rank 0 reports the first
failure of the attempt, naming its rank, with every rank's error next to it. The run dir is shared by the ranks (one
node, or a cluster's shared file system, as sweeps already assume); a rank that dies without raising (killed, out
of memory) leaves nothing, and rank 0 reports its own error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ftexp.files import atomic_write

log = logging.getLogger(__name__)

RANK_ERRORS_DIR = ".rank_errors"


def record_rank_error(run_dir: Path, rank: int, error: str, failed_at: float) -> None:
    """Leave this rank's error (and when it happened: ``time.time()``, comparable between the ranks
    of a node, and of a cluster whose clocks are synchronized) for rank 0 to read."""
    path = run_dir / RANK_ERRORS_DIR / f"rank{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"rank": rank, "error": error, "time": failed_at}
    atomic_write(path, lambda partial: partial.write_text(json.dumps(record) + "\n"))


def other_rank_errors(run_dir: Path, since: float) -> list[dict[str, Any]]:
    """The errors other ranks recorded since ``since`` (this attempt's start; older files are earlier attempts')."""
    records = []
    for path in sorted((run_dir / RANK_ERRORS_DIR).glob("rank*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("time", 0.0) >= since:
            records.append(record)
    return records


def attribute_failure(result: dict[str, Any], run_dir: Path, rank: int, failed_at: float, since: float) -> None:
    """On rank 0: when other ranks failed in this attempt too, set ``result["error"]`` to the first failure, as
    ``rank <N>: <error>``, and list every rank's error under ``rank_errors``. On any other rank: record its error
    for rank 0. ``result["error"]`` is this rank's own error when called."""
    if rank != 0:
        record_rank_error(run_dir, rank, result["error"], failed_at)
        return
    others = other_rank_errors(run_dir, since)
    if not others:
        return
    failures = sorted([{"rank": 0, "error": result["error"], "time": failed_at}, *others], key=lambda r: r["time"])
    first = failures[0]
    result["error"] = f"rank {first['rank']}: {first['error']}"
    result["rank_errors"] = {str(r["rank"]): r["error"] for r in sorted(failures, key=lambda r: r["rank"])}
    if first["rank"] != 0:
        log.error(f"rank {first['rank']} failed first (rank 0's error followed from it): {first['error']}")
