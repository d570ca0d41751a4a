"""One adapter per model family: what the explainer core needs to know of a model (`protocol`), and the
callable scores it can explain (`targets`). ``adapter_for(model)`` picks the family's adapter."""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedModelError
from .blip import BlipAdapter
from .clip_resnet import ResNetClipAdapter
from .clip_timm import EvaAdapter, SigLipAdapter
from .clip_vit import ViTClipAdapter
from .protocol import MODES, OLD_MODE_NAMES, Adapter, ExplainedLayer, canonical_mode
from .targets import ClassTarget, CosineTarget, SigmoidTarget, Target
from .timm_vit import TimmViTAdapter

ADAPTERS: dict[str, type[Adapter]] = {a.family: a for a in (ViTClipAdapter, ResNetClipAdapter, SigLipAdapter,
                                                             EvaAdapter, TimmViTAdapter, BlipAdapter)}


def family_of(model: Any) -> str:
    """The registry's name of the model's family (``model.family``: "clip_vit", "timm_vit", ...)."""
    family = getattr(model, "family", None)
    if family is None:
        raise UnsupportedModelError(f"{type(model).__name__} is not a model this library explains; wrap it with "
                                    "gl.Clip, gl.Classifier or gl.Blip (or load it with gl.load_clip, ...).")
    return family


def adapter_for(model: Any) -> Adapter:
    """The adapter of the model's family, over ``model``."""
    family = family_of(model)
    if family not in ADAPTERS:
        raise UnsupportedModelError(f"no image adapter for the {family!r} family; families: {', '.join(ADAPTERS)}")
    return ADAPTERS[family](model)


__all__ = ["ADAPTERS", "MODES", "OLD_MODE_NAMES", "Adapter", "ClassTarget", "CosineTarget", "ExplainedLayer",
           "SigmoidTarget", "Target", "adapter_for", "canonical_mode", "family_of"]
