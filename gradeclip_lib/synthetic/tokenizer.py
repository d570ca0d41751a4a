"""A word-level tokenizer for ShapesWorld's small vocabulary, with CLIP's conventions: a start token,
an end token with the largest id (so the text tower's argmax pooling finds it) and zero padding."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from ..errors import UnknownWordError
from .scenes import COLOURS, SHAPES, TEMPLATES

_WORD = re.compile(r"[a-z]+")


def vocabulary() -> list[str]:
    """Every word a ShapesWorld caption can use, in a fixed order."""
    words = ["a", "an", "and"]
    for template in TEMPLATES:
        words += [w for w in _WORD.findall(template.lower()) if w not in words]
    return words + [c for c in COLOURS if c not in words] + [s for s in SHAPES if s not in words]


class WordTokenizer:
    """Lower-cased words to ids: <pad>=0, <unk>=1, the vocabulary, <start>, <end> (the largest id)."""

    def __init__(self, words: Sequence[str] | None = None, context_length: int = 32, unknown: str = "error") -> None:
        if unknown not in ("error", "unk"):
            raise ValueError(f"unknown must be 'error' or 'unk', got {unknown!r}")
        self.unknown = unknown
        self.words = ["<pad>", "<unk>", *(words or vocabulary()), "<start>", "<end>"]
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.context_length = context_length
        self.sot_token_id = self.ids["<start>"]
        self.eot_token_id = self.ids["<end>"]

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """Word ids without start and end tokens. A word outside the vocabulary raises `UnknownWordError`
        (the model would read it as <unk> and be explained without a word of warning), unless the
        tokenizer was made with ``unknown="unk"``."""
        words = _WORD.findall(text.lower())
        missing = [w for w in words if w not in self.ids]
        if missing and self.unknown == "error":
            known = ", ".join(w for w in self.words if not w.startswith("<"))
            raise UnknownWordError(
                f"{text!r}: this model never saw {', '.join(repr(w) for w in dict.fromkeys(missing))}. "
                f"It knows only these words: {known}."
            )
        return [self.ids.get(w, 1) for w in words]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[int(i)] for i in ids)

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        """Token ids [B, context_length], cut (keeping the end token) like open_clip's tokenizer."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        length = context_length or self.context_length
        out = torch.zeros(len(texts), length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot_token_id, *self.encode(text), self.eot_token_id][:length]
            ids[-1] = self.eot_token_id
            out[row, : len(ids)] = torch.tensor(ids)
        return out
