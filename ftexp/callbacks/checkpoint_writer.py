"""Checkpoint files written off the training thread, complete or not at all.

:class:`BackgroundCheckpointIO` is a Lightning ``CheckpointIO`` plugin: the training thread takes a CPU copy of the
checkpoint (a memory copy, fast next to serializing and writing it) and a single writer thread does the rest, so the
next epoch starts while the file is written.

Why not Lightning's ``AsyncCheckpointIO``, which also copies the tensors before handing them to a thread: its
writes, removals and links are not ordered with each other (``ModelCheckpoint`` removes the previous best on the
training thread while its write may still be queued), an error surfaces only at the next save, a pending write is
never superseded by a newer one of the same file, and its base writer renames into place without ``fsync``. Here:

- every operation (write, hard link, remove) runs in submission order on one thread, so a link or a removal never
  overtakes the write it depends on;
- a write goes to a temporary file in the same directory, is ``fsync``-ed and renamed into place: a crash or
  ``kill -9`` at any moment leaves the previous file whole;
- a queued write not yet started is dropped when a newer write of the same path arrives (newest wins, so memory stays
  bounded if the disk is slower than the epochs);
- the first failure is kept and raised on the training thread at the next checkpoint operation, :meth:`flush` or
  :meth:`raise_if_failed`, naming the file, and the writer stops accepting work.

Only local paths are written in the background; any other (an fsspec URL) goes to the wrapped plugin synchronously.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins import CheckpointIO, TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import _is_local_file_protocol
from lightning_utilities.core.apply_func import apply_to_collection

TEMP_MARK = ".ftexp-partial"


class CheckpointWriteError(RuntimeError):
    """A checkpoint file could not be written (disk full, permissions, ...): the run stops rather than go on
    without the files it would resume or restore from."""


@dataclass
class _Operation:
    kind: str  # "write", "link" or "remove"
    path: Path
    payload: Any = None  # the checkpoint to write, or the file to link to


def cpu_copy(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``checkpoint`` whose tensors live on the CPU and share nothing with the training state, so that the
    writer serializes the state of this moment while training goes on."""
    return apply_to_collection(checkpoint, torch.Tensor, lambda tensor: tensor.detach().to("cpu", copy=True))


def write_complete_file(checkpoint: dict[str, Any], path: Path) -> None:
    """Serialize to a temporary file beside ``path``, flush it to the device and rename it into place: readers see
    the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}{TEMP_MARK}-{os.getpid()}")
    try:
        with temporary.open("wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def link_complete_file(target: Path, path: Path) -> None:
    """Make ``path`` name the same file as ``target`` (a hard link: it stays valid when ``target`` is removed later),
    replacing ``path`` atomically; a copy where the file system has no hard links."""
    temporary = path.with_name(f".{path.name}{TEMP_MARK}-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    try:
        os.link(target, temporary)
    except OSError:  # a file system without hard links: a complete copy, flushed before it takes the name
        try:
            with target.open("rb") as source, temporary.open("wb") as copy:
                shutil.copyfileobj(source, copy)
                copy.flush()
                os.fsync(copy.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    os.replace(temporary, path)
    _sync_directory(path.parent)


def remove_partial_files(directory: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory``; returns what was removed."""
    leftovers = sorted(directory.glob(f".*{TEMP_MARK}-*")) if directory.is_dir() else []
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def _sync_directory(directory: Path) -> None:
    # the rename itself is durable only once the directory entry is; not every platform can open a directory
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class BackgroundCheckpointIO(CheckpointIO):
    """Write checkpoints on one background thread, in order, each file complete or not at all (module docstring).

    Args:
        checkpoint_io: the plugin that loads checkpoints and writes non-local ones (default ``TorchCheckpointIO``).
    """

    def __init__(self, checkpoint_io: CheckpointIO | None = None) -> None:
        self.checkpoint_io = checkpoint_io if checkpoint_io is not None else TorchCheckpointIO()
        self._queue: deque[_Operation] = deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._error: CheckpointWriteError | None = None
        self._running: _Operation | None = None

    # ------------------------------------------------------------------ the CheckpointIO interface
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(str(path)):
            self.flush()
            self.checkpoint_io.save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        self._submit(_Operation("write", Path(path), cpu_copy(checkpoint)))

    def load_checkpoint(self, path: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.flush()  # the file asked for may still be in the queue
        return self.checkpoint_io.load_checkpoint(path, *args, **kwargs)

    def remove_checkpoint(self, path: Any) -> None:
        if not _is_local_file_protocol(str(path)):
            self.flush()
            self.checkpoint_io.remove_checkpoint(path)
            return
        self._submit(_Operation("remove", Path(path)))

    def teardown(self) -> None:
        """Lightning calls this when a stage ends, also after an exception: every pending write is finished when it
        returns, and a write's failure is kept for :meth:`flush` / :meth:`raise_if_failed` rather than raised here,
        where it would replace the exception that ended the run (``EpochCheckpoint`` raises it after a fit that
        ended normally)."""
        self.wait()
        self.checkpoint_io.teardown()

    # ------------------------------------------------------------------ beyond CheckpointIO
    def link_checkpoint(self, target: Any, path: Any) -> None:
        """``path`` becomes the same file as ``target``, once ``target`` (queued before) is complete."""
        self._submit(_Operation("link", Path(path), Path(target)))

    def flush(self) -> None:
        """Wait until every submitted operation has run; raise :class:`CheckpointWriteError` if one failed."""
        self.wait()
        self.raise_if_failed()

    def wait(self) -> None:
        """Wait until every submitted operation has run or one has failed."""
        with self._condition:
            while (self._queue or self._running is not None) and self._error is None:
                self._condition.wait()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    @property
    def pending(self) -> int:
        """Operations submitted and not finished (the one being written included)."""
        with self._condition:
            return len(self._queue) + (self._running is not None)

    # ------------------------------------------------------------------ the writer thread
    def _submit(self, operation: _Operation) -> None:
        with self._condition:
            self.raise_if_failed()  # under the lock: nothing is queued behind a failure
            self._drop_superseded(operation)
            self._queue.append(operation)
            self._condition.notify_all()
            if self._thread is None or not self._thread.is_alive():
                # not a daemon: an interpreter that exits without a flush still finishes the files it started
                self._thread = threading.Thread(target=self._work, name="ftexp-checkpoint-writer", daemon=False)
                self._thread.start()

    def _drop_superseded(self, new: _Operation) -> None:
        """Drop the queued operations ``new`` makes pointless, so that memory stays bounded when the writer falls
        behind (newest wins): an earlier write or link of the same name, and a write whose file a later queued
        removal deletes. A write that a queued link still names is always kept."""
        queued = [*self._queue, new]

        def named(index: int, op: _Operation) -> bool:
            return any(later.kind == "link" and later.payload == op.path for later in queued[index + 1 :])

        def pointless(index: int, op: _Operation) -> bool:
            if op.kind == "link":
                return new.kind in ("write", "link") and op.path == new.path
            if op.kind != "write" or named(index, op):
                return False
            overwritten = new.kind in ("write", "link") and op.path == new.path
            removed = any(later.kind == "remove" and later.path == op.path for later in queued[index + 1 :])
            return overwritten or removed

        self._queue = deque(op for index, op in enumerate(self._queue) if not pointless(index, op))

    def _work(self) -> None:
        # Linux schedules threads like processes: a lower priority for this one lets the training threads have the
        # cores first when there are few of them (the write only has to finish before the next one is due)
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while True:
            with self._condition:
                if not self._queue:
                    # done: the thread ends at once (the next submission starts another), so that it never holds
                    # up the end of the process
                    self._thread = None
                    return
                self._running = operation = self._queue.popleft()
            try:
                self._run(operation)
            except BaseException as err:  # handed to the training thread, which raises it
                traceback.clear_frames(err.__traceback__)  # the frames hold the checkpoint copy
                error = CheckpointWriteError(f"could not {operation.kind} checkpoint {operation.path}: {err}")
                error.__cause__ = err
                with self._condition:
                    self._error = self._error or error  # the first failure is the one to report
                    self._queue.clear()  # what follows may depend on it, and the run is stopping
            finally:
                with self._condition:
                    self._running = operation = None  # release the copy now, not when the next one arrives
                    self._condition.notify_all()

    @staticmethod
    def _run(operation: _Operation) -> None:
        if operation.kind == "write":
            write_complete_file(operation.payload, operation.path)
        elif operation.kind == "link":
            link_complete_file(operation.payload, operation.path)
        else:
            operation.path.unlink(missing_ok=True)


def flush_checkpoint_writes(strategy: Any, *, all_ranks: bool = False) -> None:
    """Finish the strategy's pending checkpoint writes (when its plugin writes in the background): before a file
    that may still be queued is read, and before the process hands over to something that may end it.

    With ``all_ranks`` (a collective: every rank must call it) a failure on any rank (rank 0 writes) is raised on
    every rank, so that none goes on into the next collective alone and waits there for the others."""
    checkpoint_io = getattr(strategy, "_checkpoint_io", None)
    error = None
    if isinstance(checkpoint_io, BackgroundCheckpointIO):
        try:
            checkpoint_io.flush()
        except CheckpointWriteError as failure:
            error = failure
    failed = strategy.reduce_boolean_decision(error is not None, all=False) if all_ranks else error is not None
    if failed:
        raise error or CheckpointWriteError("rank 0 could not write a checkpoint (its own error says which and why)")


def raise_if_a_write_failed(strategy: Any) -> None:
    """Raise on every rank (a collective) if a background write has failed, without waiting for pending ones."""
    checkpoint_io = getattr(strategy, "_checkpoint_io", None)
    failed = isinstance(checkpoint_io, BackgroundCheckpointIO) and checkpoint_io.failed
    if strategy.reduce_boolean_decision(failed, all=False):
        if failed:
            checkpoint_io.raise_if_failed()
        raise CheckpointWriteError("rank 0 could not write a checkpoint (its own error says which and why)")
