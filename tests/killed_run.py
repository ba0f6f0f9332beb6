"""Run ``python -m ftexp`` until its background checkpoint writer reaches a chosen point, then SIGKILL it: the
handshake the crash and resume tests share. The child blocks at that point and says so on its output, so the test
kills it exactly there, with no polling and no timing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

STALLED = "ftexp-test: writer stopped here"

# `python -c` this, then: <epoch> <"during" | "after"> <ftexp overrides...>. "during": the first file written with
# the state of <epoch> is left half-written (a partial temporary file, as a real write leaves it); "after": the child
# stops once last.ckpt holds the state of <epoch> or later, complete
_CHILD = textwrap.dedent(
    f"""
    import os, runpy, sys, threading
    import ftexp.callbacks.checkpoint_writer as writer

    epoch, where = int(sys.argv[1]), sys.argv[2]
    run_operation, seen = writer.BackgroundCheckpointIO._run, {{"epoch": -1}}

    def stop_here():
        print("\\n{STALLED}", flush=True)
        threading.Event().wait()  # until killed

    def run(operation):
        if operation.kind == "write":
            seen["epoch"] = operation.payload["epoch"]
            if where == "during" and seen["epoch"] == epoch:
                partial = operation.path.with_name(f".{{operation.path.name}}{{writer.TEMP_MARK}}-{{os.getpid()}}")
                partial.write_bytes(b"half a checkpoint")
                stop_here()
        run_operation(operation)
        if where == "after" and operation.path.name == "last.ckpt" and seen["epoch"] >= epoch:
            stop_here()

    writer.BackgroundCheckpointIO._run = staticmethod(run)
    sys.argv = ["ftexp", *sys.argv[3:]]
    runpy.run_module("ftexp", run_name="__main__")
    """
)


def kill_when_the_writer_stops(cwd: Path, epoch: int, where: str, *overrides: str) -> str:
    """Start the run, SIGKILL it when its writer reaches ``where`` ("during" or "after") the write of ``epoch``'s
    state; returns what it printed. Fails if the run ends without reaching that point."""
    environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    command = [sys.executable, "-c", _CHILD, str(epoch), where, *overrides]
    process = subprocess.Popen(
        command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    printed = []
    try:
        for line in process.stdout:
            printed.append(line)
            if STALLED in line:
                process.kill()  # SIGKILL
                break
        else:
            raise AssertionError(f"the run ended before its writer reached that point:\n{''.join(printed)[-3000:]}")
    finally:
        process.kill()
        process.wait()
    return "".join(printed)
