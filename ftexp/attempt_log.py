"""Every start of a run, also those that never wrote a result: an append-only log in the run dir.

``result.json`` lists the attempts that ended well enough to write it (completed, interrupted, requeued, failed).
An attempt killed by SIGKILL, the out-of-memory killer or a failing node writes nothing, and the next attempt, which
resumes from the last checkpoint the dead one left, would otherwise report a history with a hole nobody explains.
So each attempt appends one line to ``<run_dir>/attempts.log`` (JSON: an id, when it started, the checkpoint
it resumed from, its SLURM job) as soon as its run dir exists, before training; when it writes
``result.json``, the attempts are those of the log, each matched to its record, and a logged start with no record is
an attempt that died (status ``died``).

The attempts listed are those of the current run: since the last fresh start (one that resumed from no checkpoint)
that followed an attempt which recorded its end. A rerun that starts over in the same directory begins a new list;
a fresh start after an attempt that died before its first checkpoint continues the old one (that death is part of
this run's story).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ftexp.record import AttemptRecord

LOG_NAME = "attempts.log"
DIED = "died"  # an attempt's status when it left no record of its end


@dataclass(frozen=True)
class LoggedStart:
    """One line of the log: enough to recognize the attempt's record, and to describe it if it has none."""

    attempt_id: str
    started_at: str | None = None
    resumed_from: str | None = None
    slurm_job_id: str | None = None


def log_start(run_dir: Path, attempt: AttemptRecord) -> None:
    """Append this attempt's start, giving it its ``attempt_id``. One short line written with one ``write`` call on
    a file opened for appending: a crash leaves whole lines, or a last line :func:`read_starts` skips."""
    attempt.attempt_id = uuid.uuid4().hex[:12]
    line = {
        "attempt_id": attempt.attempt_id,
        "started_at": attempt.started_at,
        "resumed_from": attempt.resumed_from,
        "slurm_job_id": attempt.slurm_job_id,
    }
    path = run_dir / LOG_NAME
    # a crash may have cut the last line before its newline: start on a line of our own
    cut = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with path.open("a") as log:
        log.write(("\n" if cut else "") + json.dumps(line) + "\n")


def read_starts(run_dir: Path) -> list[LoggedStart]:
    """The starts logged in ``run_dir``, oldest first; a line that is not a whole entry (the write a crash cut) is
    skipped."""
    try:
        lines = (run_dir / LOG_NAME).read_text().splitlines()
    except OSError:
        return []
    starts = []
    for line in lines:
        try:
            entry = json.loads(line)
            start = LoggedStart(
                str(entry["attempt_id"]), entry.get("started_at"), entry.get("resumed_from"), entry.get("slurm_job_id")
            )
        except (ValueError, KeyError, TypeError):
            continue
        starts.append(start)
    return starts


def attempts_of_this_run(
    starts: Sequence[LoggedStart], recorded: Sequence[AttemptRecord], current: AttemptRecord
) -> list[AttemptRecord]:
    """The attempts of the current run, oldest first: each logged start with its record from ``recorded`` (the
    earlier ``result.json``'s) or ``current`` (this attempt's, which is listed last even if its line could not be
    read back), or as an attempt that died. Records of attempts the log does not hold (a run dir from before the log
    existed) come first, as they were, when ``current`` continues them (it resumed from a checkpoint)."""
    this = LoggedStart(current.attempt_id or "", current.started_at, current.resumed_from, current.slurm_job_id)
    sequence = [*(start for start in starts if start.attempt_id != current.attempt_id), this]
    by_id = {a.attempt_id: a for a in recorded if a.attempt_id is not None}
    begin = 0
    for index, start in enumerate(sequence):
        after_a_recorded_end = index > 0 and sequence[index - 1].attempt_id in by_id
        if start.resumed_from is None and (index == 0 or after_a_recorded_end):
            begin = index
    listed = [by_id.get(start.attempt_id) or died(start) for start in sequence[begin:-1]]
    unlogged = [a for a in recorded if a.attempt_id is None] if current.resumed_from is not None else []
    return [*unlogged, *listed, current]


def died(start: LoggedStart) -> AttemptRecord:
    return AttemptRecord(
        started_at=start.started_at,
        attempt_id=start.attempt_id,
        resumed_from=start.resumed_from,
        slurm_job_id=start.slurm_job_id,
        status=DIED,
        extra={"note": "started and never recorded its end: killed (SIGKILL, out of memory, node failure)"},
    )
