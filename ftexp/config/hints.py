"""The "did you mean" suggestions, for a key of a config node and for the command line.

A key that Hydra itself cannot override (``trainer.max_epoch=3``) fails while Hydra composes the config, before
any of ftexp's checks run, and Hydra's message suggests nothing: ``python -m ftexp`` then adds the "did you mean"
line (:func:`unknown_override_hints`), with the same wording the config checks use (:func:`did_you_mean`).
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


def unknown_override_hints(overrides: list[str], config_dir: Path, config_name: str = "config") -> list[str]:
    """For ``key=value`` command-line overrides whose key is not in the composed config, one line each saying the
    closest existing key (Hydra's own error for them names the key but suggests nothing)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
    except Exception:  # a syntax error: Hydra already said so
        return []

    def is_group(key: str) -> bool:
        return "/" in key or (config_dir / key).is_dir()

    plain = [o for o in parsed if not (o.is_add() or o.is_delete() or o.is_force_add()) and "@" not in o.key_or_group]
    keys = [o.key_or_group for o in plain if not is_group(o.key_or_group)]
    groups = [o.input_line for o in parsed if is_group(o.key_or_group) and not o.is_sweep_override()]
    if not keys:
        return []
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=groups, return_hydra_config=True)
    except Exception:  # the groups themselves do not compose: Hydra already said so
        return []
    hints = []
    for key in keys:
        node: Any = cfg
        for part in key.split("."):
            if not OmegaConf.is_dict(node) or part not in node:
                target = node.get("_target_") if OmegaConf.is_dict(node) else None
                if target is not None and _accepts(str(target), part):
                    hints.append(f"{key} is an argument of {target} that the config does not list: add it with +{key}=")
                else:
                    options = list(node) if OmegaConf.is_dict(node) else []
                    hints.append(f"unknown key {key}{did_you_mean(part, options)}")
                break
            try:
                node = node[part]
            except Exception:  # an interpolation that resolves only inside a job: nothing below it to suggest
                break
    return hints
