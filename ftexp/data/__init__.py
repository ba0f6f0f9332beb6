"""DataModules, the tasks and where their data comes from, and the offline tasks: synthetic pairs and held-out
sentiment (transfer)."""

from ftexp.data.datamodule import PairClassificationDataModule
from ftexp.data.synthetic import SyntheticPairs, build_tokenizer
from ftexp.data.tasks import TASKS, PairTask, load_task_columns
from ftexp.data.transfer import HeldOutSentiment

__all__ = [
    "TASKS",
    "HeldOutSentiment",
    "PairClassificationDataModule",
    "PairTask",
    "SyntheticPairs",
    "build_tokenizer",
    "load_task_columns",
]
