"""Explanation methods for `Blip`, behind the image methods' interface with token ids as targets:
``f(blip, pixels, ids [B, L], index [B]) -> MethodOutput`` (maps [B, h, w], the explained score [B]).

- ``grad_eclip``: the ITC cosine of the vision class token against the text class token (the text
  encoder alone), explained on the last vision layer exactly as CLIP's: w = dS/do at the class token (o
  the attention output before ``projection``), values of the patches, per-head min-maxed q-k cosine.
- ``itm_gradcam``: the ITM head's "match" logit explained by the cross-attention of text layer ``layer``
  (by default the middle one: 6 of 12, as LAVIS's ``compute_gradcam``): mean over heads of attention x
  ReLU(its gradient), averaged over the words (not the class and end tokens).
- ``self_attention``: the class token's attention over the patches in the last vision layer, mean over
  heads (text-blind). ``random``: the floor."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..methods.common import cosine
from ..methods.random_map import hashed_uniform
from ..methods.registry import MethodInfo, MethodOutput, pair_seeds
from ..methods.spatial_weight import QK_SCOPES, minmax, query_key_cosine, weighted_values
from .model import Blip, itm_head_logits

BLIP_METHODS: dict[str, MethodInfo] = {}


def register(name: str, cost: str = "", pair_seeds: bool = False):
    def wrap(fn):
        BLIP_METHODS[name] = MethodInfo(name, fn, cost, pair_seeds)
        return fn

    return wrap


def grid_of(blip: Blip, pixels: torch.Tensor) -> tuple[int, int]:
    return pixels.shape[-2] // blip.patch_size, pixels.shape[-1] // blip.patch_size


def vision_pass(blip: Blip, pixels: torch.Tensor, index: torch.Tensor, leaf_o: bool = False):
    """The vision encoder on the pairs' images (positions interpolated to their grid); returns (image
    tokens after post_layernorm [B, 1+N, D], q, k, v of the last layer [B, 1+N, H, d], and with ``leaf_o``
    the last layer's attention output before ``projection`` [B, 1+N, D] as a leaf that requires grad)."""
    attn = blip.model.vision_model.encoder.layers[-1].self_attn
    store: dict = {}

    def keep_qkv(_module, _args, out):
        b, n, _ = out.shape
        store["qkv"] = out.detach().float().reshape(b, n, 3, attn.num_heads, -1)

    def make_leaf(_module, args):
        store["o"] = args[0].detach().requires_grad_(True)
        return (store["o"],)

    handles = [attn.qkv.register_forward_hook(keep_qkv)]
    if leaf_o:
        handles.append(attn.projection.register_forward_pre_hook(make_leaf))
    try:
        out = blip.model.vision_model(pixel_values=pixels[index].to(blip.dtype), interpolate_pos_encoding=True)
    finally:
        for handle in handles:
            handle.remove()
    qkv = store["qkv"]
    return out.last_hidden_state, qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], store.get("o")


@register("grad_eclip", cost="1 fwd + 1 bwd (to the last vision layer), the text encoder once")
def grad_eclip_blip(blip: Blip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                    spatial_weight: bool = True, qk: str = "head") -> MethodOutput:
    """Grad-ECLIP maps [B, h, w] of the ITC cosine for pairs (pixels[index[b]], text ids targets[b])."""
    if qk not in QK_SCOPES:
        raise ValueError(f"qk must be one of {QK_SCOPES}, got {qk!r}")
    with torch.no_grad():
        text = blip.text_features(targets)
    tokens, q, k, v, o = vision_pass(blip, pixels, index, leaf_o=True)
    score = cosine(blip.model.vision_proj(tokens[:, 0]), text)
    (grad,) = torch.autograd.grad(score.sum(), o)
    b, n, heads, _ = v.shape
    lam = minmax(query_key_cosine(q[:, 0], k[:, 1:].transpose(1, 2), qk)) if spatial_weight else None
    maps = F.relu(weighted_values(grad[:, 0].float(), v[:, 1:].reshape(b, n - 1, -1), lam, heads))
    return MethodOutput(maps.reshape(-1, *grid_of(blip, pixels)).detach(), score.detach())


@register("itm_gradcam", cost="1 fwd + 1 bwd of the vision and text encoders")
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
    return MethodOutput(maps.reshape(-1, *grid_of(blip, pixels)).detach(), score.detach())


@register("self_attention", cost="1 fwd")
def self_attention_blip(blip: Blip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor
                        ) -> MethodOutput:
    """The class token's attention over the patches in the last vision layer, mean over heads."""
    with torch.no_grad():
        tokens, q, k, _, _ = vision_pass(blip, pixels, index)
        scale = q.shape[-1] ** -0.5
        probs = (torch.einsum("bhd,bnhd->bhn", q[:, 0], k) * scale).softmax(-1)
        score = cosine(blip.model.vision_proj(tokens[:, 0]), blip.text_features(targets))
    return MethodOutput(probs[:, :, 1:].mean(1).reshape(-1, *grid_of(blip, pixels)), score)


@register("random", cost="none for the map (1 fwd for the reported score)", pair_seeds=True)
def random_blip(blip: Blip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                seed: int | list[int] = 0) -> MethodOutput:
    """Uniform maps, seeded per pair as the CLIP random map."""
    seeds = torch.tensor(pair_seeds(seed, len(index)), device=pixels.device)
    with torch.no_grad():
        tokens, *_ = vision_pass(blip, pixels, index)
        score = cosine(blip.model.vision_proj(tokens[:, 0]), blip.text_features(targets))
    return MethodOutput(hashed_uniform(seeds, grid_of(blip, pixels)), score)
