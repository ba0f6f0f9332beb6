"""Parameter-efficient fine-tuning: a transformers model wrapped with Hugging Face ``peft`` adapters (LoRA, IA3), and
the rule that maps the wrapped model's parameter names back to the plain model's (names relative to the wrapped
transformers model: a LightningModule's own prefix, such as ``model.``, is its caller's to strip), by which schedules
written for the plain model are to resolve. Not yet wired into SequenceClassifier or the schedules (issue 15).

Built with peft's own pieces: ``LoraConfig`` / ``IA3Config`` with ``task_type=SEQ_CLS`` (which keeps the
classification head fully trainable through ``modules_to_save``) and ``get_peft_model``; with ``target_modules``
null, peft's default targets for the model family (BERT: query and value; DeBERTa-v2: query_proj and value_proj).

What wrapping does to the names (peft 0.21), and how :func:`plain_name` undoes it:

==================================================================  =============================================
wrapped (``named_parameters()`` of the PeftModel)                   plain
==================================================================  =============================================
``base_model.model.bert.encoder.layer.0.output.dense.weight``       ``bert.encoder.layer.0.output.dense.weight``
``base_model.model.bert....query.base_layer.weight`` (LoRA)         ``bert....query.weight``
``base_model.model.bert....query.lora_A.default.weight``            ``bert....query.lora_A.weight`` (an adapter)
``base_model.model.classifier.modules_to_save.default.weight``      ``classifier.weight`` (the trained head)
``base_model.model.classifier.original_module.weight``              none: the frozen copy peft keeps, never trained
==================================================================  =============================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import nn

ADAPTER_METHODS = ("lora", "ia3")
_PEFT_PREFIX = "base_model.model."
_ADAPTER_NAME = "default"


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


_A = re.escape(_ADAPTER_NAME)
# peft's insertions into a name: the trained copy of a saved module, a wrapped layer's own weights, an adapter's
_WRAPPED = re.compile(
    rf"\.(?:modules_to_save\.{_A}|base_layer)(?=\.)|\.(lora_[AB]|lora_embedding_[AB]|ia3_l)\.{_A}(?=\.|$)"
)


def plain_name(wrapped: str) -> str | None:
    """The plain model's name for a wrapped model's parameter (see the module docstring), ``None`` for the frozen
    copy of the head that peft keeps (``original_module``): no schedule may thaw it."""
    if ".original_module." in f".{wrapped}.":
        return None
    name = wrapped[len(_PEFT_PREFIX) :] if wrapped.startswith(_PEFT_PREFIX) else wrapped
    return _WRAPPED.sub(lambda match: f".{match.group(1)}" if match.group(1) else "", name)


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


def is_adapter(wrapped: str) -> bool:
    """Whether a wrapped model's parameter belongs to an adapter (a LoRA matrix, an IA3 vector)."""
    return bool(re.search(rf"\.(?:lora_[AB]|lora_embedding_[AB]|ia3_l)\.{_A}(?:\.|$)", wrapped))
