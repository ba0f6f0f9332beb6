"""The one exception type for bad fine-tuning configuration, so callers can catch it before training starts."""

from __future__ import annotations

from typing import Any

_NO_VALUE = object()


class ScheduleError(ValueError):
    """A fine-tuning schedule or scheduler setting that cannot be run.

    The message always says where the problem is (schedule source, phase, key) and what the offending value was, so
    a user can fix a 40-phase YAML without bisecting it.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        phase: int | str | None = None,
        key: str | None = None,
        value: Any = _NO_VALUE,
        line: int | None = None,
        show_value: bool = True,
    ) -> None:
        self.problem = problem
        self.source = source
        self.phase = phase
        self.key = key
        self.value = None if value is _NO_VALUE else value
        self.line = line
        where = []
        if source is not None:
            where.append(f"{source}" + (f":{line}" if line is not None else ""))
        if phase is not None:
            where.append(f"phase {phase}")
        if key is not None:
            where.append(f"key '{key}'")
        prefix = f"[{', '.join(where)}] " if where else ""
        suffix = f" (got {value!r})" if show_value and value is not _NO_VALUE else ""
        super().__init__(f"{prefix}{problem}{suffix}")
