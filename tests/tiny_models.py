"""Tiny models and data for the tests: an MLP, a BatchNorm conv net and a 2-layer transformer from a config.

Data is a fixed tensor dataset iterated without shuffling, so two runs with the same seed are identical.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def regression_data(n: int = 64, features: int = 8, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    y = (x[:, :1] * 2 - x[:, 1:2]).tanh()
    return TensorDataset(x, y)


class TinyModule(pl.LightningModule):
    """A LightningModule over any ``nn.Module`` mapping (batch, 8) -> (batch, 1); logs ``val_loss``."""

    def __init__(
        self,
        net: nn.Module | None = None,
        lr: float = 1e-2,
        scheduler: str | None = None,
        no_decay: list[str] | None = None,
        weight_decay: float = 0.0,
        batch_size: int = 16,
        val_targets_shift: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = net if net is not None else mlp()
        self.lr = lr
        self.scheduler = scheduler
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.val_targets_shift = val_targets_shift
        if no_decay is not None:
            self.no_decay = no_decay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y + self.val_targets_shift), prog_bar=True)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler is None:
            return optimizer
        schedulers = {
            "step": lambda: torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5),
            "plateau": lambda: torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0),
            "lambda": lambda: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 0.9**e),
        }
        config = {"scheduler": schedulers[self.scheduler](), "interval": "epoch"}
        if self.scheduler == "plateau":
            config["monitor"] = "val_loss"
        return {"optimizer": optimizer, "lr_scheduler": config}

    def train_dataloader(self):
        return DataLoader(regression_data(), batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self):
        return DataLoader(regression_data(32, seed=1), batch_size=self.batch_size, shuffle=False)


def mlp() -> nn.Sequential:
    """Four Linear layers: parameters 0.weight ... 6.bias; the blocks generator makes 4 phases of it."""
    return nn.Sequential(
        nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1)
    )


def bn_convnet() -> nn.Sequential:
    """A conv net with BatchNorm over an (batch, 8) input viewed as a 1-channel 8-length signal."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8)),
        nn.Conv1d(1, 4, 3, padding=1),
        nn.BatchNorm1d(4),
        nn.ReLU(),
        nn.Conv1d(4, 4, 3, padding=1),
        nn.BatchNorm1d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32, 1),
    )


def trainer(tmp_path, callbacks, max_epochs: int = 6, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=max_epochs,
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        logger=kwargs.pop("logger", False),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        **kwargs,
    )


class TinyTransformerClassifier(pl.LightningModule):
    """A 2-layer BERT classifier built from a config (random init), on random token sequences."""

    no_decay = ["bias", "LayerNorm.weight"]

    def __init__(self, lr: float = 1e-3) -> None:
        super().__init__()
        from transformers import AutoModelForSequenceClassification, BertConfig

        config = BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=100
        )
        self.model = AutoModelForSequenceClassification.from_config(config)
        self.lr = lr

    def _loss(self, batch):
        input_ids, labels = batch
        return self.model(input_ids=input_ids, labels=labels).loss

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if not any(f in n for f in self.no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in named if any(f in n for f in self.no_decay)], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr)

    def _loader(self, seed: int) -> DataLoader:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(1, 100, (32, 12), generator=generator)
        return DataLoader(TensorDataset(ids, (ids[:, 0] > 50).long()), batch_size=8)

    def train_dataloader(self):
        return self._loader(0)

    def val_dataloader(self):
        return self._loader(1)


def deberta_v3_base_config():
    """deberta-v3-base's architecture (12 layers, relative attention): build it on the meta device, it has 184M
    weights."""
    from transformers import DebertaV2Config

    return DebertaV2Config(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        vocab_size=128100,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        position_buckets=256,
        share_att_key=True,
        max_relative_positions=-1,
    )
