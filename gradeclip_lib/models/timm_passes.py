"""Forward passes of open_clip's timm towers (SigLIP, EVA-02) composed from the model's own modules, with the
attention that an explanation reads recorded: the MAP head's pooling attention (`PoolRecorder`), the
blocks' self-attention of an Eva (`EvaRecorder`). With all blocks these compute exactly what
``model.encode_image`` computes (tests hold them to it)."""

from __future__ import annotations

import torch
from open_clip.timm_model import TimmModel
from timm.layers import apply_rot_embed_cat
from timm.models.eva import EvaBlock
from torch import nn

from ..errors import UnsupportedModelError


# ---------------------------------------------------------------------------------------------- SigLIP
def trunk_tokens(visual: TimmModel, pixels: torch.Tensor) -> torch.Tensor:
    """The tokens the MAP head reads [B, N, D]: the trunk's blocks and final norm (without a graph unless
    one is on)."""
    return visual.trunk.forward_features(pixels.to(visual.trunk.patch_embed.proj.weight.dtype))


def pooled_embedding(visual: TimmModel, tokens: torch.Tensor) -> torch.Tensor:
    """The image embedding [B, E] from the trunk's normed tokens: the MAP head (or the class token), the
    trunk's norm and head, the tower's projection."""
    return visual.head(visual.trunk.forward_head(tokens))


class PoolRecorder:
    """Records one pass of a MAP head (timm `AttentionPoolLatent` with one probe): the probe's query
    [B, H, 1, d], the keys and values [B, H, N, d] (after the q/k norms, as the attention uses them), and its
    attention output before the projection o [B, 1, D], made a leaf that requires grad when ``leaf``."""

    def __init__(self, pool: nn.Module, leaf: bool = True) -> None:
        self.pool, self.leaf = pool, leaf
        self.q = self.k = self.v = self.o = None
        self._handles: list = []

    def __enter__(self) -> PoolRecorder:
        pool = self.pool

        def keep_q(_m, _args, out):
            b = out.shape[0]
            self.q = pool.q_norm(out.detach().reshape(b, -1, pool.num_heads, pool.head_dim).transpose(1, 2))

        def keep_kv(_m, _args, out):
            b, n, _ = out.shape
            k, v = out.detach().reshape(b, n, 2, pool.num_heads, pool.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            self.k, self.v = pool.k_norm(k), v

        def keep_o(_m, args):
            self.o = args[0].detach().requires_grad_(True) if self.leaf else args[0]
            return (self.o, *args[1:])

        self._handles = [pool.q.register_forward_hook(keep_q), pool.kv.register_forward_hook(keep_kv),
                         pool.proj.register_forward_pre_hook(keep_o)]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def pool_readout(visual: TimmModel):
    """The image embedding [B, E] as a function of the MAP head's attention output before its projection at
    the probe [B, D]: the projection, the head's MLP and norm, the trunk's norm and head, the tower's head."""
    trunk, pool = visual.trunk, visual.trunk.attn_pool

    def embedding(o: torch.Tensor) -> torch.Tensor:
        x = pool.proj_drop(pool.proj(o[:, None]))
        if pool.mlp is not None:
            x = x + pool.mlp(pool.norm(x))
        x = x[:, 0] if pool.pool in ("token", "") else x.mean(1)
        return visual.head(trunk.head(trunk.head_drop(trunk.fc_norm(x))))

    return embedding


def pooled_keys(visual: TimmModel) -> slice:
    """Which of the trunk's tokens the MAP head attends to are patches (its keys start at the first patch
    unless the trunk pools its prefix tokens too)."""
    trunk = visual.trunk
    return slice(trunk.num_prefix_tokens if trunk.pool_include_prefix else 0, None)


# ---------------------------------------------------------------------------------------------- both
def trunk_input(visual: TimmModel, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first block's input [B, N, D] and the rotary embeddings of the input's grid (None for a ViT):
    the trunk's ``forward_features`` up to its blocks."""
    trunk = visual.trunk
    if getattr(trunk, "rope_mixed", False):
        raise UnsupportedModelError("Eva towers with depth-dependent ('mixed') rotary embeddings are not supported.")
    x = trunk.patch_embed(pixels.to(trunk.patch_embed.proj.weight.dtype))
    if hasattr(trunk, "rope"):  # Eva: positions and rotary embeddings together
        x, rope = trunk._pos_embed(x)
    else:
        x, rope = trunk.patch_drop(trunk._pos_embed(x)), None
    return trunk.norm_pre(x), rope


def run_trunk_blocks(blocks, x: torch.Tensor, rope: torch.Tensor | None = None) -> torch.Tensor:
    """Tokens through timm blocks (an Eva's take the rotary embeddings)."""
    for block in blocks:
        x = block(x) if rope is None else block(x, rope=rope)
    return x


def tower_embedding(visual: TimmModel, tokens: torch.Tensor) -> torch.Tensor:
    """The image embedding [B, E] from the last block's output tokens: the trunk's final norm, then
    `pooled_embedding`."""
    return pooled_embedding(visual, visual.trunk.norm(tokens))


# ---------------------------------------------------------------------------------------------- EVA
def eva_blocks(visual: TimmModel) -> nn.ModuleList:
    """The Eva's blocks, checked to be the standard pre-norm `EvaBlock` the passes here follow."""
    blocks = visual.trunk.blocks
    for block in blocks:
        if type(block) is not EvaBlock:
            raise UnsupportedModelError(f"this Eva uses {type(block).__name__} blocks; explanations here follow "
                                        "timm's pre-norm EvaBlock (EVA-02 CLIP).")
    return blocks


def eva_qkv(attn: nn.Module, x: torch.Tensor, rope: torch.Tensor | None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v [B, H, N, d] of an `EvaAttention` on its input ``x`` as its forward makes them: fused or
    separate projections, the q/k norms, the rotary embedding on the patch rows of q and k."""
    b, n, _ = x.shape
    heads = attn.num_heads
    if attn.qkv is not None:
        qkv = attn.qkv(x)
        if attn.q_bias is not None:
            qkv = qkv + torch.cat((attn.q_bias, attn.k_bias, attn.v_bias))
        q, k, v = qkv.reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    else:
        q, k, v = (proj(x).reshape(b, n, heads, -1).transpose(1, 2) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    q, k = attn.q_norm(q), attn.k_norm(k)
    if rope is not None:
        npt, half = attn.num_prefix_tokens, getattr(attn, "rotate_half", False)
        q = torch.cat([q[:, :, :npt], apply_rot_embed_cat(q[:, :, npt:], rope, half=half)], dim=2).type_as(v)
        k = torch.cat([k[:, :, :npt], apply_rot_embed_cat(k[:, :, npt:], rope, half=half)], dim=2).type_as(v)
    return q, k, v


class EvaRecorder:
    """Records, for each of ``blocks`` in a pass: the attention's input (after norm1) and rotary embeddings,
    its output before the inner norm and projection o [B, N, D] (a graph node; a leaf that requires grad in the
    first block when ``leaf``), and the block's output tokens. ``qkv(i)`` gives block i's q, k, v."""

    def __init__(self, blocks, leaf: bool = True) -> None:
        self.blocks, self.leaf = list(blocks), leaf
        self.inputs: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self.o: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []
        self._handles: list = []

    def __enter__(self) -> EvaRecorder:
        self.inputs, self.o, self.outputs = [], [], []

        def keep_input(_m, args, kwargs):
            self.inputs.append((args[0].detach(), kwargs.get("rope")))

        def keep_o(_m, args):
            o = args[0]
            if self.leaf and not self.o:
                o = o.detach().requires_grad_(True)
            self.o.append(o)
            return (o, *args[1:])

        for block in self.blocks:
            self._handles += [block.attn.register_forward_pre_hook(keep_input, with_kwargs=True),
                              block.attn.norm.register_forward_pre_hook(keep_o),
                              block.register_forward_hook(lambda _m, _a, out: self.outputs.append(out))]
        return self

    def qkv(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, rope = self.inputs[i]
        with torch.no_grad():
            return eva_qkv(self.blocks[i].attn, x, rope)

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def eva_readout(visual: TimmModel, x_in: torch.Tensor, attn_input: torch.Tensor):
    """The image embedding [B, E] as a function of the last block's attention output before its inner norm at
    the class token [B, D], the rest held: the norm, gate and projection, the residual and MLP on the class
    row (``x_in``: the block's input, ``attn_input``: the attention's), then the final norm and heads."""
    block = visual.trunk.blocks[-1]
    attn = block.attn
    x_cls = x_in[:, 0]
    gate = attn.gate(attn_input[:, 0]).sigmoid() if attn.gate is not None else None

    def embedding(o_cls: torch.Tensor) -> torch.Tensor:
        a = attn.norm(o_cls)
        a = attn.proj(a * gate if gate is not None else a)
        y = x_cls + (block.gamma_1 * a if block.gamma_1 is not None else a)
        m = block.mlp(block.norm2(y))
        y = y + (block.gamma_2 * m if block.gamma_2 is not None else m)
        return tower_embedding(visual, y[:, None])

    return embedding
