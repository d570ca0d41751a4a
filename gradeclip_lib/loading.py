"""`gl.load`: one front door that turns any model name this library explains into a ready model.

The family is read from the name: a model shipped in ``data/`` (`models.names`), a saved folder (its
``config.json``), an open_clip CLIP name, a timm classifier name, or a BLIP hub name; ``family=`` says it
outright. ``pretrained`` means the same in every family: True, the name's own weights; a path, weights
from a file or folder; None, random weights on purpose. ``load_clip``, ``load_classifier`` and
``load_blip`` are the same loaders, one family each.
"""

from __future__ import annotations

import os

import open_clip
import timm
import torch
from timm.models import split_model_name_tag

from .blip import Blip, load_blip
from .classifiers import Classifier, load_classifier
from .models import Clip, load_clip
from .models.names import FAMILIES, SHIPPED, family_of_folder, shipped

Model = Clip | Classifier | Blip


def family_of(name: str | os.PathLike) -> str:
    """Which family ``name`` belongs to: "clip", "classifier" or "blip" (ValueError when none knows it)."""
    name = os.fspath(name)
    entry = shipped(name)
    if entry is not None:
        return entry.family
    if os.path.isdir(name):
        family = family_of_folder(name)
        if family is None:
            raise ValueError(f"{name} holds no config.json this library can read (a ShapesWorld model's, or a BLIP "
                             "saved with save_pretrained).")
        return family
    if name.split(":", 1)[0] in open_clip.list_models():
        return "clip"
    if timm.is_model(split_model_name_tag(name)[0]):
        return "classifier"
    if "blip" in name.lower():
        return "blip"
    raise ValueError(f"no model family knows {name!r}: give an open_clip name (open_clip.list_models(), e.g. "
                     "'ViT-B-16-quickgelu:openai'), a timm classifier name (timm.list_models()), a BLIP name from "
                     f"the Hugging Face hub, one of the shipped models ({', '.join(SHIPPED)}), or say family=.")


def load(name: str | os.PathLike, pretrained: bool | str | os.PathLike | None = True,
         device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None, seed: int = 0,
         family: str | None = None) -> Model:
    """The model called ``name``, ready for `explain`: a `Clip`, a `Classifier` or a `Blip`.

    ``pretrained=True``: the name's own weights (cached, or downloaded when the network answers; a clear
    error within seconds offline, never random weights by accident); a path: weights from that file or
    folder; ``None``: the architecture with random weights drawn from ``seed``. ``name`` may also be a
    folder a training command wrote (``python -m gradeclip_lib shapes train --out DIR``).
    """
    family = family or family_of(name)
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    name = os.fspath(name)
    if os.path.isdir(name) and shipped(name) is None:  # a saved folder: read it as its family's shipped model
        if pretrained is not True:
            raise ValueError(f"{name} is a saved model: load it with pretrained=True (its own weights); for random "
                             f"weights load a name with pretrained=None, e.g. gl.load({next(iter(SHIPPED))!r}, "
                             "pretrained=None)")
        name, pretrained = {"clip": "shapes", "classifier": "shapes-classifier", "blip": name}[family], name
    if family == "clip":
        return load_clip(name, pretrained=pretrained, device=device, dtype=dtype, seed=seed)
    if family == "classifier":
        if dtype is not None:
            raise ValueError("classifiers load in float32; move them with classifier.model.to(dtype=...)")
        return load_classifier(name, pretrained=pretrained, device=device, seed=seed)
    return load_blip(name, pretrained=pretrained, device=device, seed=seed,
                     **({} if dtype is None else {"dtype": dtype}))
