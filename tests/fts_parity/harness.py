"""Run one scenario through the real finetuning-scheduler package (FTS) and through ftexp, and trace both.

FTS subclasses the ``lightning.pytorch`` namespace, ftexp ``pytorch_lightning``: the same LightningModule and
tracing callback are therefore built once per namespace from one definition. Both runs start from the same weights
of a small DeBERTa-v2 (the layout of the seeds' examples: ``model.deberta.encoder.layer.N...``), see the same
batches in the same order, and log the same *scripted* ``val_loss`` per epoch, so every early-stopping decision is
identical by construction and any difference in the traces comes from the schedulers alone.

The trace, taken at the first batch of every epoch (after every epoch-start hook, before the optimizer steps),
holds what a user can observe: the depth, the trainable parameter names, and each optimizer group's lr, weight decay
and parameter names, plus the LR scheduler classes in use. The final weights close the comparison.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

NO_DECAY = ["bias", "LayerNorm.weight"]


def tiny_deberta_config() -> Any:
    """deberta-v3-base's layout (relative attention, encoder LayerNorm, rel_embeddings, pooler) at toy size,
    without dropout so that the two runs draw no random numbers while training."""
    from transformers import DebertaV2Config

    return DebertaV2Config(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=32,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_buckets=8,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        position_biased_input=False,
        type_vocab_size=0,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pooler_dropout=0.0,
        cls_dropout=0.0,
        num_labels=2,
    )


@functools.cache
def initial_weights() -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(tiny_deberta_config()).state_dict()


def _loader(seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 64, (24, 10), generator=generator)
    return DataLoader(TensorDataset(ids, (ids[:, 0] > 32).long()), batch_size=8, shuffle=False)


@dataclass
class Scenario:
    """One comparison: a schedule (``None``: implicit), callback arguments, the module's optimizer setup and the
    scripted validation losses (one per epoch; their shape decides when patience runs out)."""

    name: str
    schedule: dict | None
    val_losses: list[float]
    callback_args: dict[str, Any] = field(default_factory=dict)
    scheduler: str | None = "step"
    no_decay: bool = False
    patience: int = 1
    lr: float = 1e-3
    trainer_max_epochs: int | None = None  # default: one epoch per scripted loss

    @property
    def max_epochs(self) -> int:
        return self.trainer_max_epochs if self.trainer_max_epochs is not None else len(self.val_losses)


@dataclass
class EpochTrace:
    epoch: int
    depth: int
    trainable: list[str]
    groups: list[dict[str, Any]]
    schedulers: list[str]


@dataclass
class RunTrace:
    epochs: list[EpochTrace]
    final_weights: dict[str, torch.Tensor]


@functools.cache
def _classes(namespace: str) -> tuple[type, type]:
    """The LightningModule and the tracing callback, defined for ``lightning.pytorch`` or ``pytorch_lightning``."""
    pl: ModuleType = __import__(namespace, fromlist=["LightningModule"])

    class ParityModule(pl.LightningModule):
        def __init__(self, scenario: Scenario) -> None:
            super().__init__()
            from transformers import AutoModelForSequenceClassification

            self.model = AutoModelForSequenceClassification.from_config(tiny_deberta_config())
            self.model.load_state_dict(initial_weights())
            self.scenario = scenario
            if scenario.no_decay:
                self.no_decay = list(NO_DECAY)

        def training_step(self, batch, batch_idx):
            ids, labels = batch
            return self.model(input_ids=ids, labels=labels).loss

        def validation_step(self, batch, batch_idx):
            ids, labels = batch
            self.model(input_ids=ids, labels=labels)
            scripted = self.scenario.val_losses[self.current_epoch]
            self.log("val_loss", torch.tensor(scripted))

        def configure_optimizers(self):
            named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
            if self.scenario.no_decay:
                groups = [
                    {"params": [p for n, p in named if not any(f in n for f in NO_DECAY)], "weight_decay": 0.01},
                    {"params": [p for n, p in named if any(f in n for f in NO_DECAY)], "weight_decay": 0.0},
                ]
            else:
                groups = [{"params": [p for _, p in named], "weight_decay": 0.01}]
            optimizer = torch.optim.AdamW(groups, lr=self.scenario.lr)
            kind = self.scenario.scheduler
            if kind is None:
                return optimizer
            schedulers = {
                "step": lambda: torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9),
                "plateau": lambda: torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5),
                "lambda": lambda: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 0.8**e),
                # the phase-0 scheduler of FTS's reinit_lr example (../shared/seeds/001_*.txt)
                "linear": lambda: torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=4),
            }
            config = {"scheduler": schedulers[kind](), "interval": "epoch"}
            if kind == "plateau":
                config["monitor"] = "val_loss"
            return {"optimizer": optimizer, "lr_scheduler": config}

        def train_dataloader(self):
            return _loader(0)

        def val_dataloader(self):
            return _loader(1)

    class TraceCallback(pl.Callback):
        def __init__(self) -> None:
            self.epochs: list[EpochTrace] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx != 0:
                return
            scheduler_cb = next(cb for cb in trainer.callbacks if hasattr(cb, "curr_depth"))
            names = {id(p): n for n, p in pl_module.named_parameters()}
            groups = [
                {
                    "lr": group["lr"],
                    "weight_decay": group["weight_decay"],
                    "params": sorted(names[id(p)] for p in group["params"]),
                }
                for group in trainer.optimizers[0].param_groups
            ]
            self.epochs.append(
                EpochTrace(
                    epoch=trainer.current_epoch,
                    depth=scheduler_cb.curr_depth,
                    trainable=sorted(n for n, p in pl_module.named_parameters() if p.requires_grad),
                    groups=groups,
                    schedulers=[type(c.scheduler).__name__ for c in trainer.lr_scheduler_configs],
                )
            )

    return ParityModule, TraceCallback


def _write_schedule(scenario: Scenario, directory: Path) -> str | None:
    if scenario.schedule is None:
        return None
    path = directory / f"{scenario.name}.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(scenario.schedule), sort_keys=False))
    return str(path)


def _fit(namespace: str, scenario: Scenario, callbacks: list, root: Path) -> RunTrace:
    pl = __import__(namespace, fromlist=["Trainer"])
    module_cls, trace_cls = _classes(namespace)
    tracer = trace_cls()
    torch.manual_seed(0)
    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=scenario.max_epochs,
        callbacks=[*callbacks, tracer],
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
    )
    module = module_cls(scenario)
    trainer.fit(module)
    weights = {n: t.detach().clone() for n, t in module.state_dict().items()}
    return RunTrace(epochs=tracer.epochs, final_weights=weights)


def run_fts(scenario: Scenario, root: Path) -> RunTrace:
    from finetuning_scheduler import FinetuningScheduler, FTSCheckpoint, FTSEarlyStopping

    root.mkdir(parents=True, exist_ok=True)
    callbacks = [
        # FTS writes into the dicts it is given (pl_lrs_cfg gains reduce_on_plateau): each run gets its own copy
        FinetuningScheduler(ft_schedule=_write_schedule(scenario, root), **copy.deepcopy(scenario.callback_args)),
        FTSCheckpoint(monitor="val_loss", save_top_k=1),
    ]
    if not scenario.callback_args.get("epoch_transitions_only"):
        callbacks.insert(1, FTSEarlyStopping(monitor="val_loss", patience=scenario.patience, min_delta=0.0))
    return _fit("lightning.pytorch", scenario, callbacks, root)


def run_ftexp(scenario: Scenario, root: Path, **extra_args: Any) -> RunTrace:
    from ftexp import FinetuningScheduler, PhaseCheckpoint, PhaseEarlyStopping

    root.mkdir(parents=True, exist_ok=True)
    callbacks = [
        FinetuningScheduler(
            ft_schedule=_write_schedule(scenario, root), **copy.deepcopy(scenario.callback_args), **extra_args
        ),
        PhaseCheckpoint(monitor="val_loss", save_top_k=1),
    ]
    if not scenario.callback_args.get("epoch_transitions_only"):
        callbacks.insert(1, PhaseEarlyStopping(monitor="val_loss", patience=scenario.patience, min_delta=0.0))
    return _fit("pytorch_lightning", scenario, callbacks, root)


def differences(fts: RunTrace, ours: RunTrace, rel: float = 1e-6, atol: float = 1e-6) -> list[str]:
    """Every observable difference, one line each (empty when the runs agree)."""
    found: list[str] = []
    if len(fts.epochs) != len(ours.epochs):
        found.append(f"epochs trained: FTS {len(fts.epochs)}, ftexp {len(ours.epochs)}")
    for theirs, mine in zip(fts.epochs, ours.epochs, strict=False):
        where = f"epoch {theirs.epoch}"
        if theirs.depth != mine.depth:
            found.append(f"{where}: depth FTS {theirs.depth}, ftexp {mine.depth}")
        if theirs.trainable != mine.trainable:
            only_fts = sorted(set(theirs.trainable) - set(mine.trainable))
            only_ours = sorted(set(mine.trainable) - set(theirs.trainable))
            found.append(f"{where}: trainable only in FTS {only_fts}, only in ftexp {only_ours}")
        if theirs.schedulers != mine.schedulers:
            found.append(f"{where}: LR schedulers FTS {theirs.schedulers}, ftexp {mine.schedulers}")
        if len(theirs.groups) != len(mine.groups):
            found.append(f"{where}: {len(theirs.groups)} groups in FTS, {len(mine.groups)} in ftexp")
            continue
        for index, (g_fts, g_ours) in enumerate(zip(theirs.groups, mine.groups, strict=True)):
            if abs(g_fts["lr"] - g_ours["lr"]) > rel * max(abs(g_fts["lr"]), 1e-12):
                found.append(f"{where}: group {index} lr FTS {g_fts['lr']:.6g}, ftexp {g_ours['lr']:.6g}")
            if g_fts["weight_decay"] != g_ours["weight_decay"]:
                found.append(
                    f"{where}: group {index} weight_decay FTS {g_fts['weight_decay']}, ftexp {g_ours['weight_decay']}"
                )
            if g_fts["params"] != g_ours["params"]:
                found.append(f"{where}: group {index} params differ")
    for name, value in fts.final_weights.items():
        if not torch.allclose(value, ours.final_weights[name], rtol=rel, atol=atol):
            delta = (value - ours.final_weights[name]).abs().max().item()
            found.append(f"final weight {name} differs (max abs {delta:.3g})")
    return found
