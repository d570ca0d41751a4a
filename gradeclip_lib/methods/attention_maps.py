"""Attention as an explanation: the last layer's raw attention, and attention rollout (Abnar & Zuidema
2020). Neither looks at the text: the maps are the same for every prompt."""

from __future__ import annotations

import torch

from ..models.clip import Clip
from .common import cosine, text_pass, vision_pass
from .registry import MethodOutput, register
from .text_maps import text_weights


def rollout_matrix(records, queries: slice = slice(None)) -> torch.Tensor:
    """R = A_L' ... A_s' with A_l' = rownorm(mean_h A_l + I), for the captured blocks s .. L."""
    rollout = None
    for record in records:
        attn = record.probs().mean(dim=1)
        attn = attn + torch.eye(attn.shape[-1], device=attn.device)
        attn = attn / attn.sum(-1, keepdim=True)
        rollout = attn if rollout is None else attn @ rollout
    return rollout[:, queries]


@register("self_attention", families=["clip_vit"], cost="1 fwd")
def self_attention_image(clip: Clip, pixels, targets, index, layer: int = -1) -> MethodOutput:
    """Head-mean attention of the class token to the patches in block ``layer`` (the last by default)."""
    run = vision_pass(clip, pixels, index, first=layer, grad=False)
    cls_row = run.records[0].probs(slice(0, 1)).mean(dim=1)[:, 0, 1:]
    return MethodOutput(cls_row.reshape(-1, *run.grid), cosine(run.embedding, targets))


@register("rollout", families=["clip_vit"], cost="1 fwd", quadratic=2)
def rollout_image(clip: Clip, pixels, targets, index, start_layer: int = 0) -> MethodOutput:
    """Attention rollout from block ``start_layer`` to the last: row of the class token, patch columns."""
    run = vision_pass(clip, pixels, index, first=start_layer, grad=False)
    rollout = rollout_matrix(run.records, slice(0, 1))[:, 0, 1:]
    return MethodOutput(rollout.reshape(-1, *run.grid), cosine(run.embedding, targets))


@register("self_attention", families=["clip_text"], cost="1 fwd")
def self_attention_text(clip: Clip, ids, targets, layer: int = -1) -> MethodOutput:
    """Head-mean attention of the end token to the words in text block ``layer``."""
    run = text_pass(clip, ids, first=layer, grad=False)
    rows = torch.arange(ids.shape[0], device=ids.device)
    attn = run.records[0].probs().mean(dim=1)[rows, ids.argmax(-1)]
    return MethodOutput(text_weights(attn, ids), cosine(run.embedding, targets))


@register("rollout", families=["clip_text"], cost="1 fwd")
def rollout_text(clip: Clip, ids, targets, start_layer: int = 0) -> MethodOutput:
    """Attention rollout over the text blocks: row of the end token."""
    run = text_pass(clip, ids, first=start_layer, grad=False)
    rows = torch.arange(ids.shape[0], device=ids.device)
    rollout = rollout_matrix(run.records)[rows, ids.argmax(-1)]
    return MethodOutput(text_weights(rollout, ids), cosine(run.embedding, targets))
