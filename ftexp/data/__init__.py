"""DataModules, the pair tasks and where their data comes from, and the offline synthetic task."""

from ftexp.data.datamodule import PairClassificationDataModule
from ftexp.data.synthetic import SyntheticPairs, build_tokenizer
from ftexp.data.tasks import TASKS, PairTask, load_task_columns

__all__ = [
    "TASKS",
    "PairClassificationDataModule",
    "PairTask",
    "SyntheticPairs",
    "build_tokenizer",
    "load_task_columns",
]
