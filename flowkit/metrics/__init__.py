"""Evaluation metrics: bits per dimension and Bayes classification accuracy."""

from .classification import bayes_accuracy, class_log_probs
from .likelihood import bits_per_dim, evaluate_bpd

__all__ = ["bayes_accuracy", "bits_per_dim", "class_log_probs", "evaluate_bpd"]
