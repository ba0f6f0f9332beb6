"""Fail in seconds, with instructions, when something must come from an unreachable Hugging Face hub.

``datasets`` and ``transformers`` retry an unreachable hub with back-off for about half a minute per file before
giving up. One short TCP connect before the first hub call tells the same thing at once.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


class HubUnavailableError(RuntimeError):
    """A dataset, tokenizer or model could not be loaded; the message says how to use a local copy instead."""


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
