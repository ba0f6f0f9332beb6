"""What the arms train: a randomly initialised 4-layer BERT classifier (683k parameters) on random token batches,
the LightningModule and Trainer settings every Lightning arm shares, and the deberta-v3-large config figure 4
builds on the meta device. No downloads: every model comes from a config, the data is synthetic."""

from __future__ import annotations

import copy
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SEQ_LEN = 64
BATCH = 16
VOCAB = 1000
LR = 1e-3


def bert_config() -> Any:
    from transformers import BertConfig

    return BertConfig(
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
        vocab_size=VOCAB,
        max_position_embeddings=SEQ_LEN,
        num_labels=2,
    )


def make_template() -> nn.Module:
    """A randomly initialised BERT classifier; every arm trains a deep copy of it."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(bert_config())
    model.train()
    return model


def without_dropout(template: nn.Module) -> nn.Module:
    """A copy with every dropout off, so two arms interleaved in lockstep train identically."""
    model = copy.deepcopy(template)
    for layer in model.modules():
        if isinstance(layer, nn.Dropout):
            layer.p = 0.0
    return model


def synthetic_tokens(n_batches: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n_batches * BATCH, SEQ_LEN), generator=generator)
    labels = torch.randint(0, 2, (n_batches * BATCH,), generator=generator)
    return TensorDataset(ids, labels)


def loader(data: TensorDataset) -> DataLoader:
    return DataLoader(data, batch_size=BATCH, shuffle=False, num_workers=0)


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    ids, labels = batch
    return nn.functional.cross_entropy(model(input_ids=ids).logits, labels)


class BertModule(pl.LightningModule):
    """The LightningModule every Lightning arm trains: the same forward/backward as the raw torch loop."""

    def __init__(self, model: nn.Module, train: TensorDataset, val: TensorDataset, lr_scheduler: bool = False) -> None:
        super().__init__()
        self.model = model
        self.train_data = train
        self.val_data = val
        self.use_lr_scheduler = lr_scheduler

    def training_step(self, batch, batch_idx):
        return classification_loss(self.model, batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", classification_loss(self.model, batch))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=LR)
        if not self.use_lr_scheduler:
            return optimizer
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def train_dataloader(self):
        return loader(self.train_data)

    def val_dataloader(self):
        return loader(self.val_data)


def make_trainer(root: str, callbacks: list[Callback], **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {
        "default_root_dir": root,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "enable_checkpointing": False,
    }
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


def deberta_v3_large_config() -> Any:
    from transformers import DebertaV2Config

    return DebertaV2Config(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        vocab_size=128100,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        position_buckets=256,
        share_att_key=True,
        max_relative_positions=-1,
    )
