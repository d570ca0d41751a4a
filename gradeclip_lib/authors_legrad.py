"""The LeGrad authors' own code (PyPI ``legrad-torch`` 1.1, ``LeWrapper``) run on a CLIP ViT of this library,
to check `methods.legrad` against it.

``legrad-torch`` pins ``open_clip_torch<=2.23``; installed with ``--no-deps`` (plus ``einops``) it runs on
open_clip 3.3 with one adjustment made here: its forward hands the blocks sequence-first tokens, as open_clip
2.23 did, while 3.3's blocks are batch-first. The blocks it hooks read them as sequence-first (its attention
is torch's functional one); the others would attend across the batch, so they are set sequence-first too.
Its own path for non-square grids breaks on open_clip 3.3: it is compared on square inputs. The wrapper
changes the model it wraps (forwards, positional embedding, gradients), so it wraps a copy."""

from __future__ import annotations

import contextlib
import copy
import importlib
import io

import torch
import torch.nn.functional as F

from .errors import GradEclipError
from .models.clip import Clip

INSTALL = "pip install --no-deps legrad-torch==1.1 einops"


def authors_wrapper(clip: Clip, layer_index: int = -2):
    """``LeWrapper`` around a copy of ``clip``'s open_clip model, its blocks sequence-first."""
    try:
        legrad = importlib.import_module("legrad")
    except ImportError as err:
        raise GradEclipError(f"The LeGrad authors' package is not installed ({err}): {INSTALL}") from None
    model = copy.deepcopy(clip.model).float().eval()
    if not clip.is_timm:  # open_clip's own blocks: sequence-first, as in 2.23 (timm blocks are batch-first)
        for block in model.visual.transformer.resblocks:
            block.attn.batch_first = False
    with contextlib.redirect_stdout(io.StringIO()):  # it prints what it hooks
        return legrad.LeWrapper(model, layer_index=layer_index)


def authors_legrad_map(clip: Clip, pixels: torch.Tensor, texts: torch.Tensor, layer_index: int = -2) -> torch.Tensor:
    """Their maps [T, H, W] (pixels, min-maxed) of one image ``pixels`` [1, 3, S, S] against unit text
    embeddings ``texts`` [T, E]: ``compute_legrad_clip`` as their README calls it."""
    if pixels.shape[-1] != pixels.shape[-2]:
        raise ValueError(f"the authors' LeGrad 1.1 handles square inputs only, got {tuple(pixels.shape[-2:])}")
    wrapper = authors_wrapper(clip, layer_index)
    maps = wrapper.compute_legrad_clip(F.normalize(texts.float(), dim=-1), pixels.float())
    return maps[0].detach()


def authors_legrad_siglip_map(clip: Clip, pixels: torch.Tensor, texts: torch.Tensor, layer_index: int = -2,
                              empty: torch.Tensor | None = None) -> torch.Tensor:
    """Their SigLIP maps [T, H, W] (``compute_legrad_siglip``) of one square image against unit text
    embeddings; ``empty``: the embedding of their correction's prompt (None: no correction). Their code
    tokenizes that prompt with ViT-B-16-SigLIP's tokenizer from the hub; it is handed to them here."""
    if pixels.shape[-1] != pixels.shape[-2]:
        raise ValueError(f"the authors' LeGrad 1.1 handles square inputs only, got {tuple(pixels.shape[-2:])}")
    wrapper = authors_wrapper(clip, layer_index)
    if empty is not None:
        wrapper.empty_embedding = F.normalize(empty.float().reshape(1, -1), dim=-1).t()
    maps = [wrapper.compute_legrad_siglip(F.normalize(t.float()[None], dim=-1), pixels.float(),
                                          apply_correction=empty is not None) for t in texts]
    return torch.cat([m[0] for m in maps]).detach()
