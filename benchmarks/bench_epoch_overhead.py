"""What a fit spends between training batches, per epoch: validation, checkpoint writes and phase transitions.

Every arm trains the same ~21 M-parameter BERT classifier (random init, from a config) on the same synthetic
batches with the same Trainer settings, and times each epoch from its start to the next epoch's start (or the end of
``fit``, pending background writes included) minus the time inside training batches. Arms:

- ``plain``: plain Lightning, every parameter trains, its default checkpointing (``ModelCheckpoint()``: the whole
  state every epoch, on the training thread);
- ``fts``: the finetuning-scheduler package (when importable; ``pip install finetuning-scheduler``), 5 phases with
  epoch transitions, ``restore_best=True``, its ``FTSCheckpoint`` (the best state, on the training thread);
- ``ftexp_sync``: ftexp with the checkpoints its Hydra product used before (a monitored best checkpoint plus an
  unmonitored ``last.ckpt`` every epoch, both on the training thread);
- ``ftexp``: ftexp with ``EpochCheckpoint`` (best and ``last.ckpt`` with one write per epoch, in the background);
- ``none``: ftexp without checkpoints (the floor: validation and transitions only; also the memory baseline).

Each arm runs in its own process (``--arm``), ``--repeats`` times, interleaved; figures are medians over the
repeats of the per-epoch medians. Peak extra host memory is the process's peak resident set (``VmHWM``) above the
``none`` arm's. Usage: ``python benchmarks/bench_epoch_overhead.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ARMS = ("plain", "fts", "ftexp_sync", "ftexp", "none")
SEQ_LEN, BATCH, VOCAB = 32, 4, 4000  # short batches: the figure is about what happens between them
PHASES = 5
GOAL = 0.5  # ftexp's overhead / FTS's and / plain Lightning's


# ---------------------------------------------------------------------------------------------------- one arm
def bert_config() -> Any:
    from transformers import BertConfig

    return BertConfig(
        hidden_size=512,
        num_hidden_layers=6,
        num_attention_heads=8,
        intermediate_size=2048,
        vocab_size=VOCAB,
        max_position_embeddings=SEQ_LEN,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def schedule() -> dict[int, dict[str, Any]]:
    """5 phases, one epoch each: the head, then two encoder layers at a time, then the embeddings."""
    layer = "model.bert.encoder.layer.{}.*"
    return {
        0: {"params": ["model.classifier.*", "model.bert.pooler.*"], "max_transition_epoch": 1},
        1: {"params": [layer.format(5), layer.format(4)], "max_transition_epoch": 2},
        2: {"params": [layer.format(3), layer.format(2)], "max_transition_epoch": 3},
        3: {"params": [layer.format(1), layer.format(0)], "max_transition_epoch": 4},
        4: {"params": ["model.bert.embeddings.*"], "max_transition_epoch": 5},  # FTS wants one on every phase
    }


def run_arm(arm: str, epochs: int, train_batches: int, val_batches: int, root: Path) -> dict[str, Any]:
    import torch

    namespace = "lightning.pytorch" if arm == "fts" else "pytorch_lightning"
    pl = __import__(namespace, fromlist=["Trainer"])
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))

    def tokens(n: int, seed: int) -> DataLoader:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, VOCAB, (n * BATCH, SEQ_LEN), generator=generator)
        labels = (ids[:, 0] < VOCAB // 2).long()  # learnable, so val_loss improves and best checkpoints are saved
        return DataLoader(TensorDataset(ids, labels), batch_size=BATCH)

    class Classifier(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = BertForSequenceClassification(bert_config())

        def training_step(self, batch, batch_idx):
            return self.model(input_ids=batch[0], labels=batch[1]).loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.model(input_ids=batch[0], labels=batch[1]).loss)

        def configure_optimizers(self):
            return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=1e-4)

        def train_dataloader(self):
            return tokens(train_batches, 1)

        def val_dataloader(self):
            return tokens(val_batches, 2)

    class EpochClock(pl.Callback):
        """Per epoch: wall time from its start to the next one's (or to the end of fit), and inside batches."""

        def __init__(self) -> None:
            self.starts: list[tuple[float, float]] = []  # (wall, training thread's CPU) at each epoch start
            self.in_batches: list[tuple[float, float]] = []
            self._batch_start = (0.0, 0.0)

        @staticmethod
        def now() -> tuple[float, float]:
            return time.perf_counter(), time.thread_time()

        def on_train_epoch_start(self, trainer, pl_module):
            self.starts.append(self.now())
            self.in_batches.append((0.0, 0.0))

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._batch_start = self.now()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            (wall, cpu), (wall0, cpu0), (in_wall, in_cpu) = self.now(), self._batch_start, self.in_batches[-1]
            self.in_batches[-1] = (in_wall + wall - wall0, in_cpu + cpu - cpu0)

    clock = EpochClock()
    callbacks: list[Any] = [clock]
    if arm == "fts":
        from finetuning_scheduler import FinetuningScheduler, FTSCheckpoint

        callbacks += [
            FinetuningScheduler(ft_schedule=write_schedule(root), epoch_transitions_only=True, restore_best=True),
            FTSCheckpoint(dirpath=root / "ckpt", monitor="val_loss", save_top_k=1),
        ]
    elif arm != "plain":
        from pytorch_lightning.callbacks import ModelCheckpoint

        from ftexp import EpochCheckpoint, FinetuningScheduler, PhaseCheckpoint

        # without checkpoints (the `none` arm) there is no best state to restore
        restore = arm != "none"
        callbacks.append(FinetuningScheduler(ft_schedule=schedule(), epoch_transitions_only=True, restore_best=restore))
        if arm == "ftexp":
            callbacks.append(EpochCheckpoint(dirpath=root / "ckpt"))
        elif arm == "ftexp_sync":
            callbacks.append(PhaseCheckpoint(dirpath=root / "ckpt"))
            callbacks.append(ModelCheckpoint(dirpath=root / "ckpt", filename="last", save_on_train_epoch_end=True))
    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        enable_checkpointing=arm != "none",
        callbacks=callbacks,
    )
    module = Classifier()
    parameters = sum(p.numel() for p in module.parameters())
    rss_before_fit = _rss_kib("VmRSS")
    trainer.fit(module)
    end = clock.now()  # fit has returned: every background write is on disk
    boundaries = [*clock.starts[1:], end]
    epoch = [(stop[0] - start[0], stop[1] - start[1]) for start, stop in zip(clock.starts, boundaries, strict=True)]
    inside = clock.in_batches
    return {
        "arm": arm,
        "parameters": parameters,
        "epoch_s": [wall for wall, _ in epoch],
        "outside_s": [total[0] - part[0] for total, part in zip(epoch, inside, strict=True)],
        # the training thread's own CPU time outside batches: what it spent, whatever else ran on the machine
        "outside_cpu_s": [total[1] - part[1] for total, part in zip(epoch, inside, strict=True)],
        "in_batches_s": [wall for wall, _ in inside],
        "peak_rss_kib": _rss_kib("VmHWM"),
        "rss_before_fit_kib": rss_before_fit,
        "checkpoint_bytes": sum(f.stat().st_size for f in (root / "ckpt").glob("*.ckpt"))
        if (root / "ckpt").is_dir()
        else 0,
    }


def write_schedule(root: Path) -> str:
    import yaml

    path = root / "schedule.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(schedule()))
    return str(path)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------------- the driver
def fts_available() -> bool:
    try:
        import finetuning_scheduler  # noqa: F401
    except ImportError:
        return False
    return True


def measure(arms: list[str], repeats: int, epochs: int, train_batches: int, val_batches: int) -> dict[str, list]:
    runs: dict[str, list] = {arm: [] for arm in arms}
    for repeat in range(repeats):
        for arm in arms if repeat % 2 == 0 else reversed(arms):
            with tempfile.TemporaryDirectory(prefix=f"bench-{arm}-") as root:
                args = [sys.executable, __file__, "--arm", arm, "--root", root, "--epochs", str(epochs)]
                args += ["--train-batches", str(train_batches), "--val-batches", str(val_batches)]
                done = subprocess.run(args, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"arm {arm} failed:\n{done.stderr[-3000:]}")
                runs[arm].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  repeat {repeat + 1}/{repeats}: {arm} done", file=sys.stderr, flush=True)
    return runs


def summary(runs: dict[str, list]) -> dict[str, dict[str, float]]:
    figures = {}
    for arm, results in runs.items():
        figures[arm] = {
            "outside_s": statistics.median(statistics.median(r["outside_s"]) for r in results),
            "in_batches_s": statistics.median(statistics.median(r["in_batches_s"]) for r in results),
            "epoch_s": statistics.median(statistics.median(r["epoch_s"]) for r in results),
            "fit_outside_s": statistics.median(sum(r["outside_s"]) for r in results),
            "outside_cpu_s": statistics.median(statistics.median(r["outside_cpu_s"]) for r in results),
            "peak_rss_mib": statistics.median(r["peak_rss_kib"] for r in results) / 1024,
            "parameters": results[0]["parameters"],
        }
    return figures


def report(figures: dict[str, dict[str, float]]) -> str:
    base = figures.get("none", {}).get("peak_rss_mib")
    lines = [
        f"model: {figures['ftexp']['parameters'] / 1e6:.1f} M parameters; per epoch, medians over repeats "
        "(outside: wall time between training batches; its CPU: the training thread's own CPU time there)",
        f"{'arm':<11} {'outside s':>10} {'its CPU s':>10} {'in batches s':>13} {'fit outside s':>14} "
        f"{'peak RSS above none MiB':>24}",
    ]
    for arm, fig in figures.items():
        extra = f"{fig['peak_rss_mib'] - base:.0f}" if base is not None else "-"
        lines.append(
            f"{arm:<11} {fig['outside_s']:>10.3f} {fig['outside_cpu_s']:>10.3f} {fig['in_batches_s']:>13.3f} "
            f"{fig['fit_outside_s']:>14.3f} {extra:>24}"
        )
    for other in ("fts", "plain", "ftexp_sync"):
        if other in figures:
            wall = figures["ftexp"]["outside_s"] / figures[other]["outside_s"]
            cpu = figures["ftexp"]["outside_cpu_s"] / figures[other]["outside_cpu_s"]
            goal = " (before this change)" if other == "ftexp_sync" else f" (goal <= {GOAL}: {verdict(wall)})"
            lines.append(f"outside-batch time ftexp / {other}: {wall:.2f}, its CPU {cpu:.2f}{goal}")
    # the whole price, wherever it lands (a background write slows the next batches on a small CPU): epoch time above
    # the run without checkpoints; only the arms with the same schedule compare like for like
    if "none" in figures:
        extra = {arm: figures[arm]["epoch_s"] - figures["none"]["epoch_s"] for arm in figures if arm != "none"}
        lines.append("epoch time above no checkpoints: " + ", ".join(f"{a} {v:.3f} s" for a, v in extra.items()))
        if "fts" in extra and extra["fts"] > 0:
            lines.append(f"  ftexp / fts on that figure: {extra['ftexp'] / extra['fts']:.2f}")
    # the same schedule without checkpoints trains the same parameters: what the background writer costs batches
    for arm in ("ftexp", "ftexp_sync", "fts"):
        if arm in figures and "none" in figures:
            ratio = figures["none"]["in_batches_s"] / figures[arm]["in_batches_s"]
            lines.append(f"training-batch throughput {arm} / none: {ratio:.3f} (inverse ratio of time in batches)")
    return "\n".join(lines)


def verdict(ratio: float) -> str:
    return "met" if ratio <= GOAL else "missed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", choices=ARMS)
    parser.add_argument("--root", type=Path)
    parser.add_argument("--quick", action="store_true", help="one repeat, 2 batches per epoch (about 3 minutes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=PHASES + 1)
    parser.add_argument("--train-batches", type=int, default=4)
    parser.add_argument("--val-batches", type=int, default=2)
    args = parser.parse_args()
    if args.arm:
        import warnings

        warnings.filterwarnings("ignore")
        result = run_arm(args.arm, args.epochs, args.train_batches, args.val_batches, args.root)
        print(json.dumps(result))
        return
    if args.quick:
        args.repeats, args.train_batches = 1, 2
    arms = [arm for arm in ARMS if arm != "fts" or fts_available()]
    runs = measure(arms, args.repeats, args.epochs, args.train_batches, args.val_batches)
    print(report(summary(runs)))


if __name__ == "__main__":
    main()
