"""Grad-ECLIP-guided fine-tuning (the application of the paper's arXiv v1): region embeddings pooled from
dense patch features with explanation maps as weights, and a region-phrase loss added to CLIP's
contrastive loss. Generic pieces here; the ShapesWorld run with its controls in `shapes`."""

from .dense import encode_with_dense
from .loss import region_phrase_loss
from .regions import REGION_SOURCES, mask_weights, pool_regions, uniform_weights
from .report import finetune_table, global_loss_against, plot_finetune, plot_losses

__all__ = ["REGION_SOURCES", "encode_with_dense", "finetune_table", "global_loss_against", "mask_weights",
           "plot_finetune", "plot_losses", "pool_regions", "region_phrase_loss", "uniform_weights"]
