"""The packaged Hydra config tree, the resolver its files use, and the one helper that instantiates config nodes.

Importing this module registers ``${ftexp_file:relative/path}``, which resolves to a file shipped inside the
package (e.g. the schedule files under ``ftexp/ft_schedules``), so configs work from any working directory and from
an installed wheel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "conf"


def package_file(relative: str) -> str:
    """Absolute path of a file shipped inside the ``ftexp`` package; raises if it does not exist."""
    path = PACKAGE_DIR / relative
    if not path.is_file():
        raise FileNotFoundError(f"${{ftexp_file:{relative}}}: no such file in the ftexp package ({path})")
    return str(path)


if not OmegaConf.has_resolver("ftexp_file"):
    OmegaConf.register_new_resolver("ftexp_file", package_file)


def instantiate(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with nested configs converted to plain dicts and lists, so the objects built
    never hold OmegaConf nodes (which are slow to access and awkward to pickle into checkpoints)."""
    return hydra.utils.instantiate(node, _convert_="all", **kwargs)
