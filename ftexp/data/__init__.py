"""DataModules and the offline synthetic task."""

from ftexp.data.datamodule import TASKS, PairClassificationDataModule
from ftexp.data.synthetic import SyntheticPairs, build_tokenizer

__all__ = ["TASKS", "PairClassificationDataModule", "SyntheticPairs", "build_tokenizer"]
