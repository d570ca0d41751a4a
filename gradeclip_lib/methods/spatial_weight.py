"""The pieces of Grad-ECLIP's formula that do not involve the text: the spatial weight lambda (the
min-maxed cosine of the query against the keys, per head or over the full width) and the weighting of
the values by it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..adapters import ExplainedLayer
from ..capture import Record


def minmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Min-max to [0, 1] along ``dim``."""
    lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def qk_cosine(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """cos(q, k_i) for one query [..., d] against keys [..., N, d] -> [..., N]."""
    return (F.normalize(q, dim=-1).unsqueeze(-2) * F.normalize(k, dim=-1)).sum(-1)


QK_SCOPES = ("head", "width")


def query_key_cosine(q: torch.Tensor, k: torch.Tensor, qk: str = "head") -> torch.Tensor:
    """cos(q, k_i) per head [B, H, N] (``qk="head"``), or one over the full width [B, N] (``"width"``),
    for one query per row ``q`` [B, H, d] against keys ``k`` [B, H, N, d] (heads side by side)."""
    if qk == "head":
        return qk_cosine(q, k)
    if qk == "width":
        return qk_cosine(q.flatten(1), k.transpose(1, 2).flatten(2))
    raise ValueError(f"qk must be one of {QK_SCOPES}, got {qk!r}")


def weighted_values(w: torch.Tensor, v: torch.Tensor, lam: torch.Tensor | None, heads: int) -> torch.Tensor:
    """sum_c w_c v[i, c] lambda_i -> [B, N].

    w [B, D]; v [B, N, D]; lam None (no spatial weight), [B, N] (one per token) or [B, H, N] (per head).
    """
    wv = w.unsqueeze(1) * v  # [B, N, D]
    if lam is None:
        return wv.sum(-1)
    if lam.ndim == 2:
        return (wv * lam.unsqueeze(-1)).sum(-1)
    b, n, d = wv.shape
    per_head = wv.reshape(b, n, heads, d // heads).sum(-1)  # [B, N, H]
    return (per_head * lam.transpose(1, 2)).sum(-1)


def readout_spatial_weight(layer: ExplainedLayer, qk: str = "head") -> torch.Tensor:
    """lambda of an explained layer: cos(q_readout, k_i) over its patches i, min-maxed to [0, 1], per head
    [B, H, P] (``qk="head"``) or over the full width [B, P] (``"width"``, and always with one head)."""
    q, k = layer.q[:, :, layer.readout], layer.k[:, :, layer.patches]
    return minmax(query_key_cosine(q, k, "width" if layer.heads == 1 else qk))


def forward_lambda(record: Record, query: torch.Tensor, keys: slice | torch.Tensor, qk: str) -> torch.Tensor:
    """Spatial weight of the forward mode, min-maxed over the chosen key positions.

    ``query`` indexes one row per batch item ([B] long tensor); ``keys`` selects key positions (a slice,
    or a [B, N] boolean mask of valid keys whose other positions get weight 0).
    """
    q, k = (record.split_heads(t) for t in record.qkv()[:2])  # [B, H, N, d]
    rows = torch.arange(q.shape[0], device=q.device)
    cos = query_key_cosine(q[rows, :, query], k, qk)  # [B, H, N], or [B, N] over the full width
    if isinstance(keys, slice):
        return minmax(cos[..., keys])
    mask = keys if cos.ndim == 2 else keys.unsqueeze(1)
    lo = cos.masked_fill(~mask, float("inf")).amin(-1, keepdim=True)
    hi = cos.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)
    return ((cos - lo) / (hi - lo).clamp_min(1e-12)).masked_fill(~mask, 0.0)


def spatially_weighted_values(v: torch.Tensor, lam: torch.Tensor | None, heads: int) -> torch.Tensor:
    """v[i, c] lambda_{h(c), i} [B, N, D]: the values with each channel weighted by its head's spatial
    weight (``lam`` [B, N], [B, H, N] per head, or None), so that a map is the product w . (v lambda)
    (`weighted_values` for one w per row)."""
    if lam is None:
        return v
    if lam.ndim == 2:
        return v * lam[..., None]
    b, n, d = v.shape
    return (v.reshape(b, n, heads, d // heads) * lam.transpose(1, 2)[..., None]).reshape(b, n, d)
