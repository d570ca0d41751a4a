"""Checking text inputs before a model sees them: strings, or text embeddings of the model's width."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .errors import TextError


def as_text_list(texts: str | Sequence[str]) -> list[str]:
    """One text or several as a list of strings; anything else raises `TextError` saying what to pass."""
    items = [texts] if isinstance(texts, str) else texts
    if isinstance(items, torch.Tensor) or not isinstance(items, Sequence):
        raise TextError(f"texts are a string or a list of strings, got {type(texts).__name__}.")
    wrong = [type(t).__name__ for t in items if not isinstance(t, str)]
    if wrong:
        hint = " (class ids are targets of a classifier: gl.explain(classifier, images, targets=[...]))" \
            if wrong[0] == "int" else ""
        raise TextError(f"texts must be strings; got {len(wrong)} of type {wrong[0]}{hint}.")
    if not items:
        raise TextError("no texts given: pass at least one string.")
    return list(items)


def check_embeddings(embeddings: torch.Tensor, width: int, what: str = "text") -> torch.Tensor:
    """Embeddings [T, E] from [T, E] or [E], refused with `TextError` when E is not the model's width or a value
    is NaN or infinite (a NaN embedding would give a NaN map without a word)."""
    if embeddings.ndim not in (1, 2):
        raise TextError(f"{what} embeddings are [E] or [T, E]; got shape {tuple(embeddings.shape)}.")
    embeddings = embeddings if embeddings.ndim == 2 else embeddings.unsqueeze(0)
    if embeddings.shape[-1] != width:
        raise TextError(f"{what} embeddings of width {embeddings.shape[-1]}, but this model's embeddings have "
                        f"width {width}: encode with the same model (clip.encode_{what}).")
    if not torch.isfinite(embeddings).all():
        raise TextError(f"the {what} embeddings hold NaN or infinite values.")
    if (embeddings.norm(dim=-1) == 0).any():
        raise TextError(f"a {what} embedding is all zeros: its cosine with anything is undefined.")
    return embeddings


def unit_embeddings(embeddings: torch.Tensor, width: int, what: str = "text") -> torch.Tensor:
    """Checked (`check_embeddings`) and L2-normalised embeddings [T, E], in float32."""
    return F.normalize(check_embeddings(embeddings.float(), width, what), dim=-1)
