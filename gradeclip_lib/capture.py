"""Hooks that record what happens inside attention blocks during the model's own forward pass.

For each captured block a `Record` keeps the ln_1 output (from which q, k, v follow), the attention
output after out_proj (a node of the autograd graph) and the attention mask. open_clip 3.3 calls
``nn.MultiheadAttention`` with ``need_weights=False`` and the functional out_proj, so attention
probabilities and the pre-out_proj output are recomputed from these, never read from the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock


@dataclass
class Record:
    """What one attention block saw and produced in the last forward pass (batch-first tensors)."""

    block: ResidualAttentionBlock
    input: torch.Tensor | None = None  # the block's input [B, N, D] (the grad leaf for the first block)
    x: torch.Tensor | None = None  # ln_1 output [B, N, D]
    out: torch.Tensor | None = None  # attention output after out_proj [B, N, D], in the graph
    attn_mask: torch.Tensor | None = None
    _qkv: tuple[torch.Tensor, ...] | None = field(default=None, repr=False)

    @property
    def heads(self) -> int:
        return self.block.attn.num_heads

    def qkv(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v [B, N, D] (in_proj with bias, heads side by side), detached, float32."""
        if self._qkv is None:
            attn = self.block.attn
            qkv = F.linear(self.x.detach(), attn.in_proj_weight, attn.in_proj_bias).float()
            self._qkv = qkv.chunk(3, dim=-1)
        return self._qkv

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, N, D] -> [B, H, N, D/H]."""
        b, n, d = t.shape
        return t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

    def probs(self, queries: slice = slice(None)) -> torch.Tensor:
        """Attention probabilities per head [B, H, Q, N] for the query rows ``queries`` (all by default),
        recomputed as nn.MultiheadAttention does."""
        q, k, _ = (self.split_heads(t) for t in self.qkv())
        logits = q[:, :, queries] @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if self.attn_mask is not None:
            mask = self.attn_mask.float()
            mask = mask.reshape(-1, self.heads, *mask.shape[-2:]) if mask.ndim == 3 else mask
            logits = logits + mask[..., queries, :]
        return logits.softmax(dim=-1)

    def grad_to_o(self, grad_out: torch.Tensor) -> torch.Tensor:
        """dS/do [B, N, D] for o the attention output before out_proj, from dS/d(out_proj(o))."""
        return grad_out.float() @ self.block.attn.out_proj.weight.float()


class Capture:
    """Context manager that records `Record`s for ``blocks`` during a forward pass.

    With ``leaf=True`` the first block's input becomes a fresh leaf that requires grad, so the
    backward pass reaches the captured blocks and stops there (the model's weights are frozen).
    Each record keeps its block's input too (Grad-CAM differentiates with respect to it).
    """

    def __init__(self, blocks: Sequence[ResidualAttentionBlock], leaf: bool = True) -> None:
        self.blocks = list(blocks)
        self.leaf = leaf
        self.records: list[Record] = []
        self._handles: list = []

    def __enter__(self) -> Capture:
        self.records = [Record(block) for block in self.blocks]
        for record in self.records:
            block = record.block
            batch_first = block.attn.batch_first

            def keep_x(_module, _args, output, record=record, batch_first=batch_first):
                record.x = output if batch_first else output.transpose(0, 1)
                record._qkv = None

            def keep_out(_module, _args, kwargs, output, record=record, batch_first=batch_first):
                out = output[0]
                record.out = out if batch_first else out.transpose(0, 1)
                record.attn_mask = kwargs.get("attn_mask")

            first = self.leaf and record is self.records[0]

            def keep_input(_module, args, kwargs, record=record, batch_first=batch_first, leaf=first):
                x = args[0].detach().requires_grad_(True) if leaf else args[0]
                record.input = x if batch_first else x.transpose(0, 1)
                return ((x, *args[1:]), kwargs) if leaf else None

            self._handles.append(block.register_forward_pre_hook(keep_input, with_kwargs=True))
            self._handles.append(block.ln_1.register_forward_hook(keep_x))
            self._handles.append(block.attn.register_forward_hook(keep_out, with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def grads(self, score: torch.Tensor, retain_graph: bool = False) -> list[torch.Tensor]:
        """dS/do [B, N, D] for every captured block, one backward pass for the whole batch.

        ``score`` is [B] with each entry depending on its own batch row only, so the gradient of
        its sum holds every row's own gradient.
        """
        outs = [record.out for record in self.records]
        grads = torch.autograd.grad(score.sum(), outs, retain_graph=retain_graph)
        return [record.grad_to_o(g) for record, g in zip(self.records, grads)]
