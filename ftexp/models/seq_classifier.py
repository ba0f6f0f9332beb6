"""``SequenceClassifier``: a LightningModule around any ``AutoModelForSequenceClassification``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel

from ftexp.callbacks.lightning_internals import batches_resumed_after
from ftexp.data.generated import OOD_TEST_SPLIT
from ftexp.hub import HubUnavailableError, require_hub, resolve_pretrained, unavailable_message
from ftexp.models.adapters import adapter_choice, is_adapter, plain_name, with_adapters
from ftexp.schedule import split_no_decay

OptimizerFactory = Callable[..., torch.optim.Optimizer]
LRSchedulerFactory = Callable[[torch.optim.Optimizer], Any]
# the metric prefix of each test dataloader, in the order the datamodule returns them: the test split, then (for a
# task that has one, data=transfer) its out-of-distribution test split (PairClassificationDataModule.test_dataloader)
TEST_STAGES = ("test", OOD_TEST_SPLIT)
TEST_METRICS = tuple(f"{stage}_{metric}" for stage in TEST_STAGES for metric in ("loss", "acc"))


class SequenceClassifier(pl.LightningModule):
    """Sequence (pair) classification with a Hugging Face backbone, held as ``self.model`` (so parameter names,
    and therefore schedule patterns, start with ``model.``).

    Args:
        pretrained: a hub id, a local directory or ``pkg://<package>/<folder>`` (a model directory inside an
            installed package, see :func:`ftexp.hub.resolve_pretrained`) for ``from_pretrained``; or
        backbone: ``AutoConfig.for_model`` arguments (``model_type`` plus sizes) for a randomly initialized model.
        num_labels: classes of the task (the datamodule knows).
        vocab_size / pad_token_id: from the tokenizer; they size the embeddings of a ``backbone`` model.
        optimizer: a factory taking parameter groups (Hydra ``_partial_: true``); default AdamW(lr=2e-5).
        lr_scheduler: a factory taking the optimizer; ``None`` for a constant lr.
        lr_scheduler_config: Lightning's scheduler keys (``interval``, ``frequency``, ``monitor``, ``name``).
        peft: adapters from Hugging Face peft (:mod:`ftexp.models.adapters`): ``lora``, ``ia3``, or a mapping with
            the ``method`` and its options (LoRA: ``r``, ``alpha``, ``dropout``, ``target_modules``); the base
            weights frozen, the adapters and the head trainable (``schedule=lora`` trains exactly those).
        no_decay: name fragments of parameters trained without weight decay. Read by the FinetuningScheduler as
            well, so that every phase splits its parameters the same way.

    ``newly_initialized`` holds the names (as ``named_parameters()`` gives them, ``model.`` prefix included) of the
    parameters ``from_pretrained`` initialized at random because the checkpoint lacked them: the classifier, and
    e.g. a pooler a base-model checkpoint does not hold. Implicit schedules train them from phase 0
    (:func:`ftexp.schedule.generate_schedule` reads the attribute). Empty for a model built from ``backbone``.

    With two test dataloaders (a task with an out-of-distribution test split), the second one's metrics are
    ``test_ood_loss`` and ``test_ood_acc``: each name is logged by one dataloader only, so they are logged without
    Lightning's ``/dataloader_idx_N`` suffix and land in ``result.json`` under these names.

    The epoch metrics (``train_loss``, ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc`` ...) are torchmetrics
    ``MeanMetric`` objects: each process keeps a sum and a count, and at the end of the epoch the sums and counts of
    all processes are added up before dividing. So under DDP every rank logs the same value, the mean over every
    example the ranks evaluated together, and the early stopping, the best checkpoint and the phase transitions
    that monitor it agree across ranks. ``self.log(..., sync_dist=True)`` would average the ranks' own means
    instead, which differs from the split's mean whenever the ranks saw different numbers of examples (a shorter
    last batch). One caveat both share: Lightning's ``DistributedSampler`` pads every rank's shard to the same
    length by repeating up to ``world_size - 1`` examples of the split, which are then counted twice.

    Example::

        tokenizer = ftexp.data.build_tokenizer(max_length=32)
        backbone = {"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
        model = SequenceClassifier(backbone=backbone, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    """

    def __init__(
        self,
        pretrained: str | None = None,
        backbone: Mapping[str, Any] | None = None,
        num_labels: int = 2,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        optimizer: OptimizerFactory | None = None,
        lr_scheduler: LRSchedulerFactory | None = None,
        lr_scheduler_config: Mapping[str, Any] | None = None,
        no_decay: Sequence[str] = ("bias", "LayerNorm.weight"),
        peft: str | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # the factories are code, not hyperparameters: keeping them out keeps checkpoints loadable with weights_only
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.model, new_in_backbone = build_backbone(pretrained, backbone, num_labels, vocab_size, pad_token_id)
        if peft is not None:
            # the adapters are new too: with the head (and whatever from_pretrained initialized), phase 0's
            self.model = with_adapters(self.model, *adapter_choice(peft))
            new_plain = set(new_in_backbone)
            new_in_backbone = tuple(
                name for name, _ in self.model.named_parameters() if is_adapter(name) or plain_name(name) in new_plain
            )
            # peft freezes every base weight but the head it saves: a layer from_pretrained initialized at random (a
            # pooler the checkpoint lacks) must not stay frozen at random values, whatever the schedule
            for name, parameter in self.model.named_parameters():
                if plain_name(name) in new_plain:
                    parameter.requires_grad_(True)
        self.newly_initialized: tuple[str, ...] = tuple(f"model.{name}" for name in new_in_backbone)
        self.optimizer_factory = optimizer or partial(torch.optim.AdamW, lr=2e-5)
        self.lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_config = dict(lr_scheduler_config or {})
        self.no_decay = list(no_decay)
        # not parameters and not in the state dict (torchmetrics states are not persistent): schedules, optimizers
        # and checkpoints see the same module as without them
        self.epoch_metrics = nn.ModuleDict(
            {name: MeanMetric() for name in ("train_loss", "val_loss", "val_acc", *TEST_METRICS)}
        )

    def forward(self, **batch: torch.Tensor) -> Any:
        return self.model(**batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self(**batch).loss
        self._log_mean("train_loss", loss.detach(), weight=len(batch["labels"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx >= len(TEST_STAGES):
            raise ValueError(
                f"test dataloader {dataloader_idx}: the model names the metrics of {len(TEST_STAGES)} test dataloaders "
                f"({', '.join(TEST_STAGES)}), the datamodule returned more"
            )
        self._evaluate(batch, TEST_STAGES[dataloader_idx])

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        output = self(**batch)
        labels = batch["labels"]
        self._log_mean(f"{stage}_loss", output.loss, weight=len(labels))
        self._log_mean(f"{stage}_acc", (output.logits.argmax(dim=-1) == labels).float())

    def _log_mean(self, name: str, value: torch.Tensor, weight: float = 1.0) -> None:
        """Add ``value`` (a batch mean weighted by its batch size, or one value per example) to the epoch mean
        ``name`` and log the metric object: Lightning computes it, over all ranks, at the end of the epoch."""
        metric = self.epoch_metrics[name]
        metric.update(value, weight=weight)
        # every name belongs to one dataloader (TEST_STAGES), so Lightning's /dataloader_idx_N suffix is not needed
        self.log(name, metric, on_step=False, on_epoch=True, prog_bar=True, add_dataloader_idx=False)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the training means accumulated so far in an epoch the checkpoint is written inside of (a preemption's): the
        # fit resumed from it ends the epoch with the mean over all its batches, not over those after the resume.
        # Beside the state dict, not in it: checkpoints without them still load. Every rank holds its own sums and
        # only rank 0 writes the file: it holds every rank's
        if self._trainer is None or batches_resumed_after(self.trainer) == 0:
            return  # outside an epoch's batch loop: the means are those of a finished epoch, or of none
        sums = {
            name: {key: value.detach().cpu() for key, value in metric.metric_state.items()}
            for name, metric in self.epoch_metrics.items()
            if name.startswith("train_")
        }
        checkpoint["ftexp_epoch_metric_sums"] = gathered_from_every_rank(self.trainer, sums)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ranks = checkpoint.get("ftexp_epoch_metric_sums")
        if not ranks or self._trainer is None or len(ranks) != self.trainer.world_size:
            return
        for name, state in ranks[self.trainer.global_rank].items():
            metric = self.epoch_metrics[name]
            for key, value in state.items():
                setattr(metric, key, value.to(getattr(metric, key).device))
            metric._update_count = 1 if float(state.get("weight", torch.zeros(()))) > 0 else 0

    def _scheduler_steps(self) -> int:
        """How many times the LR scheduler will step in this run: the optimizer steps as Lightning counts them
        (epochs, batch limits, accumulation, devices) when it steps per step, else the epochs."""
        if self._trainer is None:
            raise RuntimeError("the LR scheduler's total_steps comes from the Trainer (the run's length)")
        per_step = self.lr_scheduler_config.get("interval", "epoch") == "step"
        steps = self.trainer.estimated_stepping_batches if per_step else self.trainer.max_epochs
        if steps is None or steps < 0 or steps == float("inf"):
            raise ValueError(
                f"model.lr_scheduler.total_steps: null asks for the run's length in {'steps' if per_step else 'epochs'}"
                ", and this run has no bound (max_epochs=-1 and max_steps=-1): set trainer.max_epochs or total_steps"
            )
        return int(steps)

    def configure_optimizers(self) -> Any:
        """AdamW (or the configured factory) over the *trainable* parameters only, in two groups: with weight
        decay, and without it for names containing a ``no_decay`` fragment."""
        params = dict(self.named_parameters())
        trainable = [name for name, p in params.items() if p.requires_grad]
        if not trainable:
            raise RuntimeError("configure_optimizers: no parameter of the model is trainable")
        # the scheduler splits every later phase by the same rule (ftexp.schedule.split_no_decay)
        decay, exempt = split_no_decay(trainable, self.no_decay) if self.no_decay else (trainable, [])
        groups = [{"params": [params[n] for n in decay]}] if decay else []
        if exempt:
            groups.append({"params": [params[n] for n in exempt], "weight_decay": 0.0})
        optimizer = self.optimizer_factory(groups)
        if self.lr_scheduler_factory is None:
            return optimizer
        factory = self.lr_scheduler_factory
        if needs_total_steps(factory):
            # a scheduler shaped over the whole run (SlantedTriangularLR, OneCycleLR) left total_steps open
            factory = partial(factory, total_steps=self._scheduler_steps())
        scheduler = {"scheduler": factory(optimizer), **self.lr_scheduler_config}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def build_backbone(
    pretrained: str | None,
    backbone: Mapping[str, Any] | None,
    num_labels: int,
    vocab_size: int | None,
    pad_token_id: int | None,
) -> tuple[PreTrainedModel, tuple[str, ...]]:
    """``from_pretrained(pretrained)`` or ``from_config`` of a fresh config built from ``backbone``, and the names
    of the model's parameters the checkpoint did not hold (initialized at random by ``from_pretrained``; ``()``
    for a model built from a config, where nothing is pretrained and nothing is singled out)."""
    if (pretrained is None) == (backbone is None):
        raise ValueError("model: give exactly one of 'pretrained' (hub id or directory) and 'backbone' (a config)")
    if pretrained is None:
        arguments = dict(backbone or {})
        model_type = arguments.pop("model_type", None)
        if model_type is None:
            raise ValueError("model.backbone: missing 'model_type' (e.g. bert, deberta-v2)")
        if vocab_size is not None:
            arguments["vocab_size"] = vocab_size
        if pad_token_id is not None:
            arguments["pad_token_id"] = pad_token_id
        config = AutoConfig.for_model(model_type, num_labels=num_labels, **arguments)
        return AutoModelForSequenceClassification.from_config(config), ()
    what = f"model {pretrained!r}"
    hint = "Point model.pretrained at a local directory written by save_pretrained."
    source = resolve_pretrained(pretrained)
    require_hub(source, what, hint)
    try:
        model, loading_info = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, output_loading_info=True
        )
    except OSError as err:
        raise HubUnavailableError(unavailable_message(what, str(err), hint)) from err
    embeddings = model.get_input_embeddings().num_embeddings
    if vocab_size is not None and vocab_size > embeddings:
        raise ValueError(
            f"model: the tokenizer has {vocab_size} tokens but {pretrained!r} embeds only {embeddings}; use the "
            "model's own tokenizer (data.tokenizer)"
        )
    return model, newly_initialized_parameters(model, loading_info)


def newly_initialized_parameters(model: nn.Module, loading_info: Mapping[str, Any]) -> tuple[str, ...]:
    """The parameters of ``model`` that ``from_pretrained`` initialized at random, from its
    ``output_loading_info``: the ``missing_keys`` (the checkpoint lacks them) and ``mismatched_keys`` (the
    checkpoint's shape differs; only with ``ignore_mismatched_sizes``), in ``named_parameters()`` order.

    Missing persistent buffers (BatchNorm statistics) are reported among the keys but are not parameters: no phase
    thaws them, so they are left out. Loading a base-model checkpoint into a model with a head, some transformers
    versions name the missing keys of the base model without its prefix (``pooler.dense.weight`` for
    ``bert.pooler.dense.weight``): a key that is no parameter name as given is looked up under the prefix.
    """
    names = [name for name, _ in model.named_parameters()]
    known = set(names)
    prefix = getattr(model, "base_model_prefix", "")
    reported = [*loading_info.get("missing_keys", ())]
    # a mismatched entry is (key, checkpoint shape, model shape)
    reported += [entry if isinstance(entry, str) else entry[0] for entry in loading_info.get("mismatched_keys", ())]
    new: set[str] = set()
    for key in reported:
        for candidate in (key, f"{prefix}.{key}" if prefix else key):
            if candidate in known:
                new.add(candidate)
                break
    return tuple(name for name in names if name in new)


def needs_total_steps(factory: Callable[..., Any]) -> bool:
    """Whether an LR-scheduler factory (a partial, as Hydra's ``_partial_`` gives) takes ``total_steps`` and was
    given none (``total_steps: null`` in the config): the module then fills it in from the trainer."""
    bound = getattr(factory, "keywords", {}) or {}
    target = getattr(factory, "func", factory)
    try:
        takes_it = "total_steps" in inspect.signature(target).parameters
    except (TypeError, ValueError):  # a callable without a signature: give it what the config gives
        return False
    return takes_it and bound.get("total_steps") is None


def gathered_from_every_rank(trainer: pl.Trainer, value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` in a single process)."""
    if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        ranks: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(ranks, value)
        return ranks
    return [value]
