"""The two towers' forward passes composed from the model's own modules, so a method can stop, branch
or resume at any block without a copy of the model. With a standard-size image and all blocks these
compute exactly what ``model.encode_image`` / ``model.encode_text`` compute."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn

from .clip import TextTower


def positional_embedding(visual: VisionTransformer, grid: tuple[int, int]) -> torch.Tensor:
    """Positional embeddings [1 + gh*gw, D] for a token grid: the class row kept, the patch rows
    resized bicubically (align_corners=False) from the training grid, as the authors do."""
    pos = visual.positional_embedding
    train = tuple(visual.grid_size)
    if tuple(grid) == train:
        return pos
    cls_pos, patch_pos = pos[:1], pos[1:].float()
    patch_pos = patch_pos.reshape(1, *train, -1).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, size=tuple(grid), mode="bicubic", align_corners=False)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
    return torch.cat([cls_pos, patch_pos.to(pos.dtype)])


def vision_tokens(visual: VisionTransformer, pixels: torch.Tensor) -> torch.Tensor:
    """Patch embedding + class token + positional embedding + ln_pre: the first block's input [B, 1+N, D]."""
    x = visual.conv1(pixels.to(visual.conv1.weight.dtype))
    grid = x.shape[-2:]
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + positional_embedding(visual, grid).to(x.dtype)
    return visual.ln_pre(visual.patch_dropout(x))


def vision_embedding(visual: VisionTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """The image embedding [B, E] from the last block's output tokens (the model's pooling + proj)."""
    pooled, _ = visual._pool(tokens)
    return pooled @ visual.proj if visual.proj is not None else pooled


@contextlib.contextmanager
def memory_linear_attention():
    """Turn off ``nn.MultiheadAttention``'s inference fast path for a while. On a CPU that path materialises
    every head's tokens x tokens weights (26 GB for a 3000 x 2000 photo in ViT-B/16); without it the
    attention goes through ``scaled_dot_product_attention``, whose kernels never hold the matrix, so memory
    grows linearly with the tokens (and it runs faster). The results agree to float rounding."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def run_blocks(blocks: Iterable[nn.Module], x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Run residual attention blocks as the model's Transformer does (batch-first tokens), with attention
    whose memory is linear in the tokens (`memory_linear_attention`)."""
    with memory_linear_attention():
        for block in blocks:
            batch_first = block.attn.batch_first
            x = block(x if batch_first else x.transpose(0, 1), attn_mask=attn_mask)
            x = x if batch_first else x.transpose(0, 1)
    return x


def text_tokens(tower: TextTower, ids: torch.Tensor) -> torch.Tensor:
    """Token + positional embeddings: the first text block's input [B, L, D]."""
    dtype = tower.blocks[0].mlp.c_fc.weight.dtype
    x = tower.token_embedding(ids).to(dtype)
    return x + tower.positional_embedding[: ids.shape[1]].to(dtype)


def text_embedding(tower: TextTower, tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The text embedding [B, E]: ln_final, the end-of-text row (argmax of ids), projection."""
    x = tower.ln_final(tokens)
    pooled = x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]
    return tower.project(pooled)


def text_mask(tower: TextTower, length: int, dtype: torch.dtype) -> torch.Tensor | None:
    """The causal mask for ``length`` tokens in the blocks' dtype, as the model passes it."""
    if tower.attn_mask is None:
        return None
    return tower.attn_mask[:length, :length].to(dtype)
