"""LightningModules."""

from ftexp.models.seq_classifier import SequenceClassifier

__all__ = ["SequenceClassifier"]
