"""Evaluation metrics: bits per dimension, Bayes classification accuracy and sample quality (FD, KID)."""

from .classification import bayes_accuracy, class_log_probs
from .distances import frechet_distance, kid
from .features import ClassifierConfig, FeatureExtractor
from .fid import sample_quality
from .inception import InceptionExtractor
from .likelihood import bits_per_dim, evaluate_bpd

__all__ = ["bayes_accuracy", "bits_per_dim", "class_log_probs", "evaluate_bpd",
           "ClassifierConfig", "FeatureExtractor", "InceptionExtractor", "frechet_distance", "kid", "sample_quality"]
