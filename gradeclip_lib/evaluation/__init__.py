"""Faithfulness evaluation: the authors' deletion / insertion protocol, vectorised on the device, over
image folders (ImageNet val included), resumable and shardable; and the RISE causal metric."""

from .causal import causal_auc, causal_curves
from .classes import ClassSet, folder_classes, imagenet_wnids, zero_shot_classifier
from .curves import FRACTIONS, auc, checkpoint_counts, insertion_efficiency
from .perturb import noise_image, perturbed, pixel_ranks
from .plots import efficiency_by_method, plot_curves, plot_efficiency, show_checkpoints, summary_html, summary_table
from .preprocess import to_pixels
from .protocol import Batch, ZeroShot, clean_logits, deletion_insertion, explain_batch, explain_targets
from .run import MethodSpec, beats_floor, differ, evaluate_folder, format_summary, paired_area_gap, summary, tiers

__all__ = [
    "FRACTIONS", "Batch", "ClassSet", "MethodSpec", "ZeroShot", "auc", "beats_floor", "causal_auc", "causal_curves",
    "checkpoint_counts", "clean_logits", "deletion_insertion", "differ", "efficiency_by_method", "evaluate_folder",
    "explain_batch", "insertion_efficiency", "plot_efficiency",
    "explain_targets",
    "folder_classes", "format_summary", "imagenet_wnids", "noise_image", "paired_area_gap", "perturbed",
    "pixel_ranks", "plot_curves",
    "show_checkpoints", "summary", "summary_html", "summary_table", "tiers", "to_pixels", "zero_shot_classifier",
]
