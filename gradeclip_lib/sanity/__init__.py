"""Sanity checks of explanation methods (Adebayo et al., NeurIPS 2018): does a method's map change when the
model it explains is randomised? A map that survives the model's randomisation does not explain the model."""

from .experiment import cascading_randomisation, data_randomisation
from .quantus_view import QuantusView, quantus_explain
from .randomise import STAGES_HEAD, randomise_stage, randomised_copy, stage_names
from .similarity import spearman_per_map, ssim

__all__ = ["STAGES_HEAD", "QuantusView", "cascading_randomisation", "data_randomisation", "quantus_explain",
           "randomise_stage", "randomised_copy", "spearman_per_map", "ssim", "stage_names"]
