"""Methods for `Blip` only: ``itm_gradcam``, the ITM head's "match" logit explained by the cross-attention of
text layer ``layer`` (by default the middle one: 6 of 12, as LAVIS's ``compute_gradcam``): mean over heads of
attention x ReLU(its gradient), averaged over the words (not the class and end tokens). Grad-ECLIP (on the
ITC cosine), RISE, the random map and the class token's attention are the adapter-wide methods
(`adapters.blip`); all take token ids as targets."""

from __future__ import annotations

import torch

from ..blip.model import Blip, itm_head_logits
from .registry import BLIP_METHODS, MethodOutput, register

__all__ = ["BLIP_METHODS", "itm_gradcam_blip"]


@register("itm_gradcam", families=["blip"], cost="1 fwd + 1 bwd of the vision and text encoders")
def itm_gradcam_blip(blip: Blip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                     layer: int | None = None, probability: bool = False) -> MethodOutput:
    """Gradient-weighted cross-attention maps [B, h, w] of the ITM "match" logit (``probability=True``: its
    softmax probability) for pairs (pixels[index[b]], text ids targets[b])."""
    text = blip.model.text_encoder
    depth = len(text.encoder.layer)
    layer = depth // 2 if layer is None else layer  # LAVIS's compute_gradcam(block_num=6) of 12 layers
    if not 0 <= layer < depth:
        raise ValueError(f"layer {layer}: the text encoder has {depth} layers (0 .. {depth - 1}); LAVIS uses 6")
    cross = text.encoder.layer[layer].crossattention.self
    store: dict = {}

    def keep_probs(_module, _args, out):
        store["probs"] = out[1]

    handle = cross.register_forward_hook(keep_probs)
    try:
        image = blip.model.vision_model(pixel_values=pixels[index].to(blip.dtype),
                                        interpolate_pos_encoding=True).last_hidden_state.detach()
        image = image.requires_grad_(True)  # the graph starts here: the gradient reaches the text layers only
        logits = itm_head_logits(blip.model, targets, image, blip.pad_id)
    finally:
        handle.remove()
    score = logits.softmax(-1)[:, 1] if probability else logits[:, 1]
    probs = store["probs"]
    (grad,) = torch.autograd.grad(score.sum(), probs)
    cam = (probs[..., 1:] * grad[..., 1:].clamp(min=0)).float().mean(1)  # [B, L, N]
    length = (targets != blip.pad_id).sum(1, keepdim=True)
    positions = torch.arange(targets.shape[1], device=targets.device)[None]
    words = ((positions >= 1) & (positions < length - 1)).float()  # not the class token, not [SEP]
    maps = (cam * words[..., None]).sum(1) / words.sum(1, keepdim=True).clamp_min(1)
    grid = (pixels.shape[-2] // blip.patch_size, pixels.shape[-1] // blip.patch_size)
    return MethodOutput(maps.reshape(-1, *grid).detach(), score.detach())
