"""The "did you mean" suggestions, for a key of a config node and for the command line.

A key that Hydra itself cannot override (``trainer.max_epoch=3``) fails while Hydra composes the config, before
any of ftexp's checks run, and Hydra's message advises ``+trainer.max_epoch=3``, which would add a key that the
Trainer then refuses. ``python -m ftexp`` looks at its command line first (:func:`refused_override_keys`) and
stops such a command with one message of its own, in the wording the config checks use (:func:`did_you_mean`),
before Hydra composes anything.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def did_you_mean(name: str, options: Any) -> str:
    """``", did you mean max_epochs?"`` for ``max_epoch`` among options holding ``max_epochs``; ``""`` when nothing
    is close."""
    close = difflib.get_close_matches(name, [str(o) for o in options], n=1, cutoff=0.6)
    return f", did you mean {close[0]}?" if close else ""


def _accepts(target: str, argument: str) -> bool:
    """Whether the class or function ``target`` names takes ``argument`` (imported only for such a hint)."""
    from hydra.utils import get_object

    try:
        return argument in inspect.signature(get_object(target)).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return False


# flags of `python -m ftexp` that leave the config Hydra composes as it is (``--cfg`` and ``-c`` take a value)
_FLAGS_KEEPING_THE_CONFIG = {"-m", "--multirun", "-r", "--run", "--resolve"}
_FLAGS_WITH_A_VALUE = {"-c", "--cfg"}


def command_line_overrides(argv: list[str]) -> list[str] | None:
    """The overrides of a ``python -m ftexp`` command line that runs, sweeps or prints the packaged config;
    ``None`` for any other (another config name or directory, help, info, ...), which Hydra handles alone.

    >>> command_line_overrides(["-m", "seed=1,2", "trainer.max_epochs=3"])
    ['seed=1,2', 'trainer.max_epochs=3']
    """
    overrides = []
    args = iter(argv)
    for arg in args:
        if arg in _FLAGS_WITH_A_VALUE:
            next(args, None)
        elif arg in _FLAGS_KEEPING_THE_CONFIG or arg.startswith("--cfg="):
            continue
        elif arg.startswith("-"):
            return None
        else:
            overrides.append(arg)
    return overrides


def refused_override_keys(argv: list[str], config_dir: Path, config_name: str = "config") -> list[str]:
    """What ``python -m ftexp`` says, one line each, about the keys of ``argv`` (its command line) that Hydra would
    refuse to override because the config does not have them; ``[]`` when there are none, or when the command line
    is not one of a plain run, sweep or ``--cfg`` (Hydra then reports on its own)."""
    overrides = command_line_overrides(argv)
    return unknown_override_hints(overrides, config_dir, config_name) if overrides else []


def unknown_override_hints(overrides: list[str], config_dir: Path, config_name: str = "config") -> list[str]:
    """For ``key=value`` overrides whose key Hydra would refuse because the composed config does not have it, one
    line each saying the closest existing key, or how to add a real argument of the node's ``_target_``.

    A key is looked up in the config that the other overrides compose (group choices, ``+key=`` additions,
    deletions), as Hydra applies it. Sweeps follow Hydra's multirun: a sweep over a group leaves the group at its
    default for the overrides of plain keys (Hydra composes the sweep so before any job), and a swept key
    (``trainer.max_epochs=3,4``), which Hydra applies per job, is looked up only when no group is swept. A key below
    a list or an interpolation gets no line: Hydra decides."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Override

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # a syntax error: Hydra says so
        return []

    def is_group(override: Override) -> bool:
        return "/" in override.key_or_group or (config_dir / override.key_or_group).is_dir()

    def sets_a_key(override: Override) -> bool:
        return not (is_group(override) or override.is_add() or override.is_delete() or override.is_force_add())

    group_swept = any(is_group(o) and o.is_sweep_override() for o in parsed)
    checked = [o for o in parsed if sets_a_key(o) and not (group_swept and o.is_sweep_override())]
    if not checked:
        return []
    others = [o.input_line for o in parsed if not sets_a_key(o) and not o.is_sweep_override()]
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=others, return_hydra_config=True)
    except Exception:  # the other overrides do not compose: Hydra says why
        return []
    return [hint for hint in (_missing_key_hint(cfg, o.key_or_group) for o in checked) if hint]


def _missing_key_hint(cfg: Any, key: str) -> str | None:
    """The line for ``key`` when a dict on its path lacks the next part, or a value stands where a dict would."""
    node: Any = cfg
    for part in key.split("."):
        if OmegaConf.is_list(node):  # an index: Hydra decides
            return None
        if not OmegaConf.is_dict(node) or part not in node:
            target = node.get("_target_") if OmegaConf.is_dict(node) else None
            if target is not None and _accepts(str(target), part):
                return f"{key} is an argument of {target} that the config does not list: add it with +{key}="
            options = list(node) if OmegaConf.is_dict(node) else []
            return f"unknown key {key}{did_you_mean(part, options)}"
        try:
            node = node[part]
        except Exception:  # an interpolation that resolves only inside a job: nothing below it to suggest
            return None
    return None
