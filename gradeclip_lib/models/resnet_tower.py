"""The ResNet image tower of CLIP (open_clip `ModifiedResNet`) run in two pieces: the convolutional trunk
to a stage's feature map, and the attention pool written out, so that its query, keys, values and
attention output can be read and differentiated. Any input size whose sides are multiples of 32 works:
the pool's positional embedding is resized to the feature grid as the ViT's is. With a standard-size
image this computes exactly what ``model.encode_image`` computes (tested)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet

STRIDE = 32  # pixels per cell of the last stage's feature map (the attention pool's grid)
STAGES = 4


def trunk(visual: ModifiedResNet, pixels: torch.Tensor, stages: int = STAGES) -> torch.Tensor:
    """The stem and the first ``stages`` residual stages: feature maps [B, C, H/s, W/s]."""
    x = visual.stem(pixels.to(visual.conv1.weight.dtype))
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4)[:stages]:
        x = layer(x)
    return x


def finish_trunk(visual: ModifiedResNet, x: torch.Tensor, start: int) -> torch.Tensor:
    """Stages ``start`` + 1 .. 4 on the output of stage ``start`` (the rest of `trunk`)."""
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4)[start:]:
        x = layer(x)
    return x


def pool_positional_embedding(pool: AttentionPool2d, grid: tuple[int, int]) -> torch.Tensor:
    """Positional embeddings [1 + h*w, C] for a feature grid: the mean token's row kept, the spatial
    rows resized bicubically (align_corners=False) from the training grid."""
    pos = pool.positional_embedding
    side = math.isqrt(pos.shape[0] - 1)
    if tuple(grid) == (side, side):
        return pos
    spatial = pos[1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    spatial = F.interpolate(spatial, size=tuple(grid), mode="bicubic", align_corners=False)
    spatial = spatial.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
    return torch.cat([pos[:1], spatial.to(pos.dtype)])


@dataclass
class PoolPass:
    """The attention pool on a batch of feature maps: its tokens' q, k, v [B, 1+N, C] (row 0 is the mean
    token, the query), the attention output o [B, C] of the mean token before ``c_proj`` and the embedding
    [B, E]. With ``grad`` in `attention_pool`, ``o`` is a leaf that requires grad, so dS/do costs one
    backward pass through ``c_proj`` only."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    embedding: torch.Tensor
    heads: int
    grid: tuple[int, int]

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, N, C] -> [B, H, N, C/H]."""
        b, n, c = t.shape
        return t.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def probs(self) -> torch.Tensor:
        """The mean token's attention over all 1 + N tokens, per head [B, H, 1 + N]."""
        q, k = self.split_heads(self.q[:, :1]), self.split_heads(self.k)
        return (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)[:, :, 0]


def pool_tokens(pool: AttentionPool2d, feats: torch.Tensor) -> torch.Tensor:
    """The pool's input tokens [B, 1 + N, C]: the mean of the feature map, then its cells, plus positions."""
    x = feats.flatten(2).transpose(1, 2)  # [B, N, C]
    x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
    return x + pool_positional_embedding(pool, tuple(feats.shape[-2:])).to(x.dtype)


def attention_pool(pool: AttentionPool2d, feats: torch.Tensor, grad: bool = False) -> PoolPass:
    """`AttentionPool2d.forward` written out (F.multi_head_attention_forward with one query, the mean
    token, over all tokens), keeping its pieces."""
    x = pool_tokens(pool, feats)
    q, k, v = pool.q_proj(x), pool.k_proj(x), pool.v_proj(x)
    heads = pool.num_heads
    run = PoolPass(q, k, v, q.new_empty(0), q.new_empty(0), heads, tuple(feats.shape[-2:]))
    o = (run.probs().unsqueeze(2) @ run.split_heads(v)).squeeze(2)  # [B, H, C/H]
    o = o.reshape(len(x), -1)
    if grad:
        o = o.detach().float().requires_grad_(True)
    run.o = o
    run.embedding = pool.c_proj(o.to(pool.c_proj.weight.dtype))
    return run


def resnet_embedding(visual: ModifiedResNet, pixels: torch.Tensor) -> torch.Tensor:
    """Image embeddings [B, E] of inputs of any size with sides multiple of 32 (no normalisation)."""
    return attention_pool(visual.attnpool, trunk(visual, pixels)).embedding
