"""The M2IB authors' own interpreter (github.com/YingWANGG/M2IB, ``scripts/iba.py``), run on a CLIP ViT of
this library, to check `methods.m2ib` against it.

Their ``IBAInterpreter`` expects a Hugging Face CLIP: ``get_image_features``, ``get_text_features`` and a
``vision_model`` whose blocks return tuples. `HuggingFaceView` gives an open_clip model that face without
changing a weight. Their ``scripts/methods.py`` imports OpenAI's ``clip`` package at import time, so only
its ``get_compression_estimator`` is read from the file. The files are never copied into this repository:
a user clones their repository and passes its path."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import GradEclipError
from .models.clip import Clip
from .models.towers import vision_embedding, vision_tokens

REPOSITORY = "https://github.com/YingWANGG/M2IB"


class _TupleBlock(nn.Module):
    """A block that answers as a Hugging Face encoder layer does: a tuple."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor]:
        return (self.block(x),)


class _VisionView(nn.Module):
    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.layers = nn.ModuleList(_TupleBlock(b) for b in visual.transformer.resblocks)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = vision_tokens(self.visual, pixels)
        for layer in self.layers:
            x = layer(x)[0]  # the bottleneck, once inserted after a layer, also returns a tuple
        return vision_embedding(self.visual, x)


class HuggingFaceView(nn.Module):
    """``clip`` (a ViT CLIP) with the methods the authors' interpreter calls."""

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        if clip.backbone != "vit":
            raise GradEclipError("the authors' M2IB reads a ViT's blocks; this model is a ResNet")
        self.clip = clip
        self.vision_model = _VisionView(clip.visual)

    def get_image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision_model(pixels)

    def get_text_features(self, ids: torch.Tensor) -> torch.Tensor:
        return self.clip.model.encode_text(ids)


def authors_interpreter(path: str | Path):
    """Their ``scripts.iba`` module and ``get_compression_estimator`` function, from the clone at ``path``."""
    root = Path(path)
    if not (root / "scripts" / "iba.py").is_file():
        raise GradEclipError(f"No scripts/iba.py under {root}. Clone the authors' code (git clone {REPOSITORY}) "
                             "and pass the folder.")
    sys.path.insert(0, str(root))
    try:
        iba = importlib.import_module("scripts.iba")
    finally:
        sys.path.remove(str(root))
    tree = ast.parse((root / "scripts" / "methods.py").read_text())
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_compression_estimator"]
    if not found:
        raise GradEclipError(f"{root}/scripts/methods.py has no get_compression_estimator: not the authors' code?")
    namespace = {"Estimator": iba.Estimator, "np": np, "torch": torch}
    exec(compile(ast.Module(body=found, type_ignores=[]), str(root / "scripts" / "methods.py"), "exec"),  # noqa: S102
         namespace)
    return iba, namespace["get_compression_estimator"]


def authors_m2ib_map(path: str | Path, clip: Clip, pixels: torch.Tensor, ids: torch.Tensor, layer: int,
                     beta: float = 0.1, var: float = 1.0, steps: int = 10, lr: float = 1.0, seed: int = 0
                     ) -> torch.Tensor:
    """Their image map over the patches [N] (before their upsampling and min-max) for one image [1, 3, H, W]
    and one text's ids [1, L], the bottleneck after block ``layer``, their noise drawn after ``seed``."""
    iba, get_compression_estimator = authors_interpreter(path)
    model = HuggingFaceView(clip)
    with torch.no_grad():
        x = vision_tokens(clip.visual, pixels)
        for block in clip.vision_blocks[: layer + 1]:
            x = block(x)
    estimator = get_compression_estimator(var, model.vision_model.layers[layer], x)
    reader = iba.IBAInterpreter(model, estimator, beta=beta, lr=lr, steps=steps)
    torch.manual_seed(seed)
    capacity, *_ = reader._run_vision_training(ids, pixels)
    return torch.nansum(capacity, -1)[1:].detach()  # their vision_heatmap's first step; [0] is the class token
