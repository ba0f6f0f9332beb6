"""A run's trained model as a plain Hugging Face model directory, for inference without ftexp or peft:
``python -m ftexp.export <run_dir> <out_dir> [--checkpoint best|last|PATH]``.

The model is rebuilt from the run's own config (``<run_dir>/.hydra/config.yaml``) and the checkpoint's weights
loaded into it; adapters (``model.peft``) are merged into the base weights with peft's ``merge_and_unload`` (the
trained head replaces peft's frozen copy); the result is written with ``save_pretrained``, with the run's tokenizer
beside it, so ``AutoModelForSequenceClassification.from_pretrained(out_dir)`` and ``AutoTokenizer.from_pretrained``
load it. The export checks itself before it reports success: the directory is loaded back and its logits on the
first validation batch compared with the checkpoint's model (``export.json`` records the largest difference).

The output directory must not exist (or be empty): an export never writes over what is there.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

MAX_LOGIT_DIFFERENCE = 1e-4  # float32 merging of LoRA's low-rank product changes logits by ~1e-6


class ExportError(RuntimeError):
    """Something about the run, its checkpoint or the output directory prevents the export; the message says what."""


@dataclass
class ExportRecord:
    """What ``export.json`` in the output directory says about where the model came from."""

    run_dir: str
    checkpoint: str
    merged_adapters: bool
    max_logit_difference: float
    examples_checked: int


def export_run(run_dir: str | Path, out_dir: str | Path, checkpoint: str = "best") -> ExportRecord:
    """Export the run's model at ``checkpoint`` (``best``, ``last`` or a path) to ``out_dir`` (module docstring)."""
    from ftexp.config import instantiate
    from ftexp.run_schedule import model_inputs, model_node

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise ExportError(f"{run_dir}: not a run directory (no .hydra/config.yaml)")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"{out_dir}: exists and is not an empty directory; an export writes only to a new one")
    checkpoint_file = _checkpoint_file(run_dir, checkpoint)
    cfg = OmegaConf.load(config_file)
    datamodule = instantiate(cfg.data)
    module = instantiate(model_node(cfg), **model_inputs(datamodule))
    state = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
    try:
        module.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        raise ExportError(f"{checkpoint_file}: does not fit the model of {config_file}: {err}") from err
    module.eval()
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    with torch.no_grad():
        expected = module(**inputs).logits  # before merging, which changes the wrapped layers in place
    plain, merged = _plain_model(module.model)
    out_dir.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out_dir)
    datamodule.tokenizer.save_pretrained(out_dir)
    difference = _reloaded_difference(out_dir, inputs, expected)
    record = ExportRecord(str(run_dir), str(checkpoint_file), merged, difference, len(expected))
    (out_dir / "export.json").write_text(json.dumps(asdict(record), indent=2) + "\n")
    if difference > MAX_LOGIT_DIFFERENCE:
        raise ExportError(
            f"{out_dir}: the exported model's logits differ from the checkpoint's by {difference:.3g} "
            f"(more than {MAX_LOGIT_DIFFERENCE:g}); the directory is kept for inspection"
        )
    return record


def _checkpoint_file(run_dir: Path, checkpoint: str) -> Path:
    if checkpoint in ("best", "last"):
        result_file = run_dir / "result.json"
        if not result_file.is_file():
            raise ExportError(f"{run_dir}: no result.json, so no {checkpoint} checkpoint; pass --checkpoint PATH")
        recorded = json.loads(result_file.read_text()).get(f"{checkpoint}_checkpoint")
        if not recorded:
            raise ExportError(f"{result_file}: records no {checkpoint}_checkpoint; pass --checkpoint PATH")
        path = Path(recorded)
    else:
        path = Path(checkpoint)
    if not path.is_file():
        raise ExportError(f"checkpoint {path}: no such file")
    return path


def _plain_model(model: nn.Module) -> tuple[nn.Module, bool]:
    """The transformers model without adapters: merged into its weights when ``model`` is peft's wrapper."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model.merge_and_unload(), True
    return model, False


def _reloaded_difference(out_dir: Path, inputs: dict[str, torch.Tensor], expected: torch.Tensor) -> float:
    from transformers import AutoModelForSequenceClassification

    reloaded = AutoModelForSequenceClassification.from_pretrained(out_dir).eval()
    with torch.no_grad():
        logits = reloaded(**inputs).logits
    return float((logits - expected).abs().max())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftexp.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="the run's directory (it holds result.json and .hydra/)")
    parser.add_argument("out_dir", help="a new directory for the Hugging Face model and tokenizer")
    parser.add_argument("--checkpoint", default="best", help="best (default), last, or a checkpoint file")
    args = parser.parse_args(argv)
    try:
        record = export_run(args.run_dir, args.out_dir, args.checkpoint)
    except ExportError as err:
        print(f"export failed: {err}", file=sys.stderr)
        return 1
    merged = "adapters merged, " if record.merged_adapters else ""
    print(
        f"exported {record.checkpoint} to {args.out_dir} ({merged}logits checked on {record.examples_checked} "
        f"validation examples: max difference {record.max_logit_difference:.2g})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
