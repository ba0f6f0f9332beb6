"""Reading and writing schedule YAML files with errors that point at the file and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ftexp.schedule.errors import ScheduleError


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys: PyYAML silently keeps the last one, which would drop a
    whole phase of a schedule without a word."""


def _construct_mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ScheduleError(
                f"duplicate key {key!r} (first defined at line {seen[key]})",
                source=getattr(loader, "source_name", None),
                line=line,
                show_value=False,
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


# YAML 1.1 reads `1e-5` (no dot) as a string, yet every ML config writes lrs that way; read it as a float.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_without_duplicates)


def load_schedule_yaml(path: str | Path) -> Any:
    """Parse a schedule file; syntax errors and duplicate keys raise :class:`ScheduleError` with file and line."""
    path = Path(path)
    if not path.is_file():
        raise ScheduleError("schedule file does not exist", source=str(path), key="ft_schedule", show_value=False)
    text = path.read_text()
    loader = _StrictLoader(text)
    loader.source_name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ScheduleError(f"invalid YAML: {err.problem or err}", source=str(path), line=line) from err
    finally:
        loader.dispose()


def dump_schedule_yaml(schedule_dict: dict, path: str | Path) -> Path:
    """Write a resolved schedule in the FTS-compatible YAML layout (integer phase keys, in order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(schedule_dict, sort_keys=False, default_flow_style=False))
    return path
