"""Copies of a CLIP ViT whose image tower is re-initialised from the top: first its head (``ln_post`` and
``proj``), then its blocks from the last one down, each with the initialisation its modules define."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models.clip import Clip

STAGES_HEAD = "head"


def stage_names(clip: Clip) -> list[str]:
    """The parts re-initialised, in cascading order: the head, then the blocks from the last one down."""
    blocks = len(clip.vision_blocks)
    return [STAGES_HEAD, *(f"block {i}" for i in range(blocks - 1, -1, -1))]


def _reinitialise(module: nn.Module) -> None:
    """Every submodule's own initialisation (attention, linear layers, layer norms)."""
    for sub in module.modules():
        if isinstance(sub, nn.MultiheadAttention):
            sub._reset_parameters()
        elif hasattr(sub, "reset_parameters"):
            sub.reset_parameters()


def randomise_stage(clip: Clip, name: str, seed: int = 0) -> None:
    """Re-initialise one part of ``clip``'s image tower in place (a name of `stage_names`), from a seed of its
    own (``seed`` and the part's place in the cascade), so that a part gets the same weights in any order."""
    names = stage_names(clip)
    if name not in names:
        raise ValueError(f"no part {name!r}; the parts are {names}")
    visual = clip.model.visual
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1000 * seed + names.index(name))
        if name == STAGES_HEAD:
            visual.ln_post.reset_parameters()
            with torch.no_grad():
                visual.proj.normal_(0, visual.proj.shape[0] ** -0.5)  # open_clip's initialisation
        else:
            _reinitialise(visual.transformer.resblocks[int(name.split()[1])])


def randomised_copy(clip: Clip, stages: int, seed: int = 0, cascading: bool = True) -> Clip:
    """A copy of ``clip`` (left unchanged) with the first ``stages`` parts of `stage_names` re-initialised
    (``cascading``), or only the part of index ``stages - 1`` (independent randomisation)."""
    if clip.backbone != "vit":
        raise ValueError("the randomisation test re-initialises a ViT's blocks; this model is a ResNet")
    names = stage_names(clip)
    if not 0 <= stages <= len(names):
        raise ValueError(f"stages runs from 0 (the trained model) to {len(names)}, got {stages}")
    chosen = names[:stages] if cascading else names[stages - 1 : stages] if stages else []
    copy_ = Clip(copy.deepcopy(clip.model), clip.tokenizer, preprocess_cfg=vars(clip.preprocess_cfg).copy(),
                 name=f"{clip.name} ({', '.join(chosen)} randomised)" if chosen else clip.name,
                 pretrained=clip.pretrained)
    for name in chosen:
        randomise_stage(copy_, name, seed)
    return copy_
