"""Forward passes of a CLIP's towers with chosen attention blocks captured (`capture.Capture`), and of a
ResNet CLIP's attention pool: what the CLIP adapters and the CLIP-only methods run the model with."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..capture import Capture, Record
from .clip import Clip
from .resnet_tower import PoolPass, attention_pool, trunk
from .towers import run_blocks, text_embedding, text_mask, text_tokens, vision_embedding, vision_tokens


@dataclass
class Pass:
    """One forward pass: the embedding [B, E], the records of the captured blocks, and the token grid."""

    embedding: torch.Tensor
    records: list[Record]
    capture: Capture
    grid: tuple[int, int] = (0, 0)


def token_grid(clip: Clip, pixels: torch.Tensor) -> tuple[int, int]:
    """The patch grid (h, w) of model inputs [.., H, W]."""
    return pixels.shape[-2] // clip.patch_size, pixels.shape[-1] // clip.patch_size


def vision_trunk(clip: Clip, pixels: torch.Tensor, index: torch.Tensor, stop: int) -> torch.Tensor:
    """Tokens after blocks 0 .. stop-1, computed once per image without a graph, then one row per pair."""
    with torch.no_grad():
        return run_blocks(clip.vision_blocks[:stop], vision_tokens(clip.visual, pixels))[index]


def vision_pass(clip: Clip, pixels: torch.Tensor, index: torch.Tensor, first: int, grad: bool = True) -> Pass:
    """The image tower on ``pixels`` with blocks ``first`` .. L-1 captured, on the pairs' images ``index``.

    Blocks before ``first`` run once per image without a graph; with ``grad`` the captured blocks keep
    one, starting from a leaf at block ``first``'s input.
    """
    blocks = clip.vision_blocks
    first = first % len(blocks)
    x = vision_trunk(clip, pixels, index, first)
    with torch.set_grad_enabled(grad), Capture(blocks[first:], leaf=grad) as cap:
        embedding = vision_embedding(clip.visual, run_blocks(blocks[first:], x))
    return Pass(embedding, cap.records, cap, token_grid(clip, pixels))


def text_pass(clip: Clip, ids: torch.Tensor, first: int, grad: bool = True) -> Pass:
    """The text tower on token ids [B, L] with blocks ``first`` .. L-1 captured (as `vision_pass`)."""
    tower = clip.text_tower
    blocks = tower.blocks
    first = first % len(blocks)
    x = text_tokens(tower, ids)
    mask = text_mask(tower, ids.shape[1], x.dtype)
    with torch.no_grad():
        x = run_blocks(blocks[:first], x, mask)
    with torch.set_grad_enabled(grad), Capture(blocks[first:], leaf=grad) as cap:
        embedding = text_embedding(tower, run_blocks(blocks[first:], x, mask), ids)
    return Pass(embedding, cap.records, cap)


def resnet_features(clip: Clip, pixels: torch.Tensor, index: torch.Tensor, stages: int = 4) -> torch.Tensor:
    """A ResNet CLIP's feature maps [B, C, h, w] after ``stages`` stages, computed once per image, one row
    per pair."""
    with torch.no_grad():
        return trunk(clip.visual, pixels, stages)[index]


def pool_pass(clip: Clip, pixels: torch.Tensor, index: torch.Tensor, grad: bool = True) -> PoolPass:
    """A ResNet CLIP's attention pool on the pairs' images; with ``grad``, its attention output ``o`` is a
    leaf."""
    feats = resnet_features(clip, pixels, index)
    with torch.set_grad_enabled(grad):
        return attention_pool(clip.visual.attnpool, feats, grad=grad)
