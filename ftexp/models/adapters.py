"""Parameter-efficient fine-tuning: a transformers model wrapped with Hugging Face ``peft`` adapters (LoRA, IA3).

Built with peft's own pieces: ``LoraConfig`` / ``IA3Config`` with ``task_type=SEQ_CLS`` (which keeps the
classification head fully trainable through ``modules_to_save``) and ``get_peft_model``; with ``target_modules``
null, peft's default targets for the model family (BERT: query and value; DeBERTa-v2: query_proj and value_proj).
What wrapping does to parameter names, and how schedules written for the plain model resolve through it:
:mod:`ftexp.schedule.wrapped_names` (re-exported here: :func:`plain_name`, :func:`is_adapter`). The merged plain
model for inference: :mod:`ftexp.export`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ftexp.schedule.wrapped_names import is_adapter, plain_name

__all__ = ["adapter_choice", "adapter_config", "is_adapter", "plain_name", "with_adapters"]

ADAPTER_METHODS = ("lora", "ia3")


def adapter_config(method: str, options: Mapping[str, Any]) -> Any:
    """peft's config for ``method`` from ``options`` (``r``, ``alpha``, ``dropout``, ``target_modules`` for LoRA;
    ``target_modules``, ``feedforward_modules`` for IA3), for sequence classification. Unknown methods or options are
    refused naming ``model.peft``."""
    from peft import IA3Config, LoraConfig, TaskType

    known = {"lora": {"r", "alpha", "dropout", "target_modules"}, "ia3": {"target_modules", "feedforward_modules"}}
    if method not in known:
        raise ValueError(f"model.peft.method: unknown adapter method {method!r}; known: {', '.join(ADAPTER_METHODS)}")
    unknown = sorted(set(options) - known[method])
    if unknown:
        raise ValueError(
            f"model.peft: {method} takes no {', '.join(unknown)} (it takes {', '.join(sorted(known[method]))})"
        )
    targets = options.get("target_modules")
    targets = list(targets) if targets is not None else None
    if method == "lora":
        return LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=_whole(options.get("r", 8), "r"),
            lora_alpha=_whole(options.get("alpha", 16), "alpha"),
            lora_dropout=float(options.get("dropout", 0.1)),
            target_modules=targets,
        )
    feedforward = options.get("feedforward_modules")
    return IA3Config(
        task_type=TaskType.SEQ_CLS,
        target_modules=targets,
        feedforward_modules=list(feedforward) if feedforward is not None else None,
    )


def with_adapters(model: nn.Module, method: str, options: Mapping[str, Any]) -> nn.Module:
    """``model`` wrapped by peft's ``get_peft_model``: the base weights frozen, the adapters and the task head
    trainable. Target modules the model does not have are refused before training, with the module names it has
    that an adapter could target (its ``nn.Linear`` leaves, by their last name)."""
    from peft import get_peft_model

    config = adapter_config(method, options)
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        linear = sorted({name.rpartition(".")[2] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(
            f"model.peft.target_modules: {err} The model's linear layers, by name: {', '.join(linear)}"
        ) from err


def _whole(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model.peft.{key}: must be a whole number >= 1, got {value!r}")
    return value


def adapter_choice(peft: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``model.peft`` as (method, options): a method's name alone (``lora``: peft's defaults) or a mapping with a
    ``method`` and its options."""
    if isinstance(peft, str):
        return peft, {}
    options = dict(peft)
    method = options.pop("method", None)
    if not isinstance(method, str):
        raise ValueError(f"model.peft: give the method, e.g. model.peft=lora or {{method: lora, r: 8}} (got {peft!r})")
    return method, options
