"""Parameter names under a Hugging Face ``peft`` adapter wrapper, and the plain model's names they stand for.

A schedule written for the plain model (``model.bert.encoder.layer.11.*``, ``model.classifier.weight``) must still
select the same weights once ``model.peft`` wraps the model, although every name changed. This module holds the one
rule that maps them, as plain string arithmetic (no peft import: the schedule resolver and the dry run use it on
names alone). What wrapping does to a name (peft 0.13 to 0.21), shown with a LightningModule's ``model.`` prefix:

==============================================================  =============================================
wrapped (``named_parameters()``)                                plain
==============================================================  =============================================
``model.base_model.model.bert.encoder.layer.0.output.dense.w``  ``model.bert.encoder.layer.0.output.dense.w``
``model.base_model.model.bert....query.base_layer.weight``      ``model.bert....query.weight`` (LoRA-wrapped)
``model.base_model.model.bert....query.lora_A.default.weight``  ``model.bert....query.lora_A.weight`` (adapter)
``model.base_model.model.classifier.modules_to_save.default.w``  ``model.classifier.w`` (the trained head)
``model.base_model.model.classifier.original_module.weight``    none: peft's frozen copy of the head, unused
==============================================================  =============================================

How a schedule resolves through the wrapper (:func:`ftexp.schedule.resolve_schedule`): a name or pattern selects
the parameters it matches by their wrapped names or by their plain names (each plain match stands for its wrapped
parameter), so ``.*query[.]weight``, written for the plain model, also selects a LoRA-wrapped ``query.base_layer``.
Patterns never select an adapter (the adapters train from phase 0: they exist to be trained, and a pattern written
for the plain model cannot mean them) nor peft's frozen copy (no schedule may thaw it: it takes no part in the
forward pass). Adapters no phase names join phase 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

ADAPTER_NAME = "default"  # peft's name for the adapter get_peft_model adds
_A = re.escape(ADAPTER_NAME)
_PEFT_MODEL = re.compile(r"(^|\.)base_model\.model\.")
# peft's insertions into a name: the trained copy of a saved module, a wrapped layer's own weights, an adapter's name
_INSERTED = re.compile(
    rf"\.(?:modules_to_save\.{_A}|base_layer)(?=\.)|\.(lora_[AB]|lora_embedding_[AB]|ia3_l)\.{_A}(?=\.|$)"
)
_ADAPTER = re.compile(rf"\.(?:lora_[AB]|lora_embedding_[AB]|ia3_l)\.{_A}(?:\.|$)")


def is_adapter(name: str) -> bool:
    """Whether a wrapped model's parameter belongs to an adapter (a LoRA matrix, an IA3 vector)."""
    return bool(_ADAPTER.search(name))


def is_frozen_copy(name: str) -> bool:
    """Whether a parameter is peft's frozen copy of a module it trains a copy of (``original_module``)."""
    return ".original_module." in f".{name}."


def plain_name(wrapped: str) -> str | None:
    """The plain model's name for a wrapped model's parameter (see the module docstring; any prefix before peft's
    ``base_model.model.`` is kept), ``None`` for peft's frozen copy of the head: no schedule may thaw it."""
    if is_frozen_copy(wrapped):
        return None
    name = _PEFT_MODEL.sub(lambda match: match.group(1), wrapped, count=1)
    return _INSERTED.sub(lambda match: f".{match.group(1)}" if match.group(1) else "", name)


@dataclass(frozen=True)
class WrappedNames:
    """A wrapped model's parameter names seen as the plain model's: ``plain_to_wrapped`` maps the plain name of
    every base-model and head parameter whose name the wrapper changed; ``adapters`` and ``frozen_copies`` are the
    wrapped names patterns never select (module docstring), in the model's order."""

    plain_to_wrapped: dict[str, str]
    adapters: tuple[str, ...]
    frozen_copies: frozenset[str]

    @classmethod
    def of(cls, names: Sequence[str]) -> WrappedNames | None:
        """The view of ``names`` (a module's ``named_parameters()`` names), ``None`` when nothing is wrapped."""
        adapters = tuple(name for name in names if is_adapter(name))
        if not adapters:
            return None
        frozen = frozenset(name for name in names if is_frozen_copy(name))
        plain_to_wrapped: dict[str, str] = {}
        for name in names:
            plain = plain_name(name)
            if plain is not None and plain != name and name not in adapters:
                plain_to_wrapped[plain] = name
        return cls(plain_to_wrapped, adapters, frozen)

    def unselectable(self, name: str) -> bool:
        """Whether a pattern may not select ``name``: an adapter or a frozen copy."""
        return name in self.frozen_copies or is_adapter(name)
