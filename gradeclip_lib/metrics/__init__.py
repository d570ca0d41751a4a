"""Metrics of explanations: localisation against object masks, and intervals for the rates reported."""

from .correlation import bootstrap_interval, mean_with_interval, pearson, r_squared, spearman_with_interval
from .intervals import format_rate, rate_with_interval, wilson_interval
from .localisation import energy_pointing_game, pointing_game
from .paired import PairedComparison, paired_comparison, word_difference
from .segmentation import average_precision, mean_iou, pixel_accuracy

__all__ = [
    "PairedComparison",
    "average_precision",
    "bootstrap_interval",
    "energy_pointing_game",
    "format_rate",
    "mean_iou",
    "mean_with_interval",
    "paired_comparison",
    "pearson",
    "pixel_accuracy",
    "pointing_game",
    "r_squared",
    "rate_with_interval",
    "spearman_with_interval",
    "wilson_interval",
    "word_difference",
]
