"""Methods for `Classifier`s only: Grad-CAM on the tokens entering the last block. Grad-ECLIP, RISE, the
random map and the class token's attention are the adapter-wide methods (`adapters.timm_vit`); all take
class ids as targets and explain a class logit (``probability=True``: its softmax probability)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..adapters.targets import ClassTarget
from ..adapters.timm_vit import last_block_pass
from ..classifiers.classifier import Classifier
from .registry import CLASSIFIER_METHODS, MethodOutput, register

__all__ = ["CLASSIFIER_METHODS", "grad_cam_classifier"]


@register("grad_cam", families=["timm_vit"], cost="1 fwd + 1 bwd (from the last block's input)")
def grad_cam_classifier(classifier: Classifier, pixels, targets, index, probability: bool = False
                        ) -> MethodOutput:
    """Grad-CAM on the tokens entering the last block: ReLU(sum_c mean_i(dS/dx_ic) x_ic)."""
    grid = classifier.check_grid(pixels)
    prefix = classifier.model.num_prefix_tokens
    run = last_block_pass(classifier.model, pixels[index], leaf="input")
    score = ClassTarget(targets, probability)(run.logits)
    (grad,) = torch.autograd.grad(score.sum(), run.input)
    patches = run.input[:, prefix:].float().detach()
    weights = grad[:, prefix:].float().mean(1, keepdim=True)
    return MethodOutput(F.relu((weights * patches).sum(-1)).reshape(-1, *grid), score.detach())
