"""The readout token's own attention over the patches in the explained layer, averaged over heads: the
class token's last-layer attention of a ViT classifier, BLIP or EVA-02, the mean-token query of a ResNet
CLIP's attention pool, the probe of SigLIP's MAP head. Text-blind. (CLIP ViT has its own, for any block:
`attention_maps.self_attention_image`.)"""

from __future__ import annotations

import math

import torch

from ..adapters import adapter_for
from .registry import MethodOutput, register


@register("self_attention", families=["clip_resnet", "clip_siglip", "clip_eva", "timm_vit", "blip"], cost="1 fwd")
def readout_attention(model, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                      **target_options) -> MethodOutput:
    """Mean over heads of softmax(q_readout k^T / sqrt(d)) at the patches [B, h, w]."""
    adapter = adapter_for(model)
    with torch.no_grad():
        layer = adapter.explained_layer(pixels, index, grad=False)
        q = layer.q[:, :, layer.readout : layer.readout + 1]
        probs = (q @ layer.k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)[:, :, 0, layer.patches]
        score = adapter.target(targets, **target_options)(layer.features)
    return MethodOutput(probs.mean(1).reshape(-1, *layer.grid), score)
