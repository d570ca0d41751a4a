"""Grad-ECLIP explanations of CLIP: image maps and word weights for open_clip models (ViT and ResNet),
supervised ViT classifiers (timm) and BLIP (transformers).

>>> import gradeclip_lib as gl
>>> clip = gl.load("ViT-B-16-quickgelu:openai")  # or a timm classifier, a BLIP, "shapes"; pretrained=None
>>> exp = gl.explain(clip, "cat.jpg", "a photo of a cat")
>>> exp.upsampled()  # [1, H, W] in [0, 1]
"""

from . import book, plotting, samples
from .attention import attention_maps
from .blip import Blip, load_blip
from .classifiers import Classifier, load_classifier
from .errors import (
    GradEclipError,
    ImageError,
    ImageTooLargeError,
    TextError,
    TextTooLongError,
    TokenizerUnavailableError,
    UnknownWordError,
    UnsupportedModelError,
    WeightsUnavailableError,
)
from .explain import explain, explain_text, grad_eclip_terms
from .explanation import Explanation, TextExplanation
from .export import save_figure
from .loading import load
from .methods import IMAGE_METHODS, RESNET_METHODS, TEXT_METHODS
from .models import Clip, load_clip
from .prompts import class_atlas, prompt_maps

__version__ = "0.1.0"


def __getattr__(name: str):
    """``gl.widgets``, ``gl.synthetic``, ``gl.shapesworld``, ``gl.metrics`` and ``gl.evaluation`` load on first use."""
    if name in ("widgets", "synthetic", "shapesworld", "metrics", "evaluation"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gradeclip_lib' has no attribute {name!r}")

__all__ = [
    "Blip",
    "Classifier",
    "Clip",
    "Explanation",
    "GradEclipError",
    "IMAGE_METHODS",
    "RESNET_METHODS",
    "ImageError",
    "ImageTooLargeError",
    "TEXT_METHODS",
    "TextError",
    "TextExplanation",
    "TextTooLongError",
    "TokenizerUnavailableError",
    "UnknownWordError",
    "UnsupportedModelError",
    "attention_maps",
    "book",
    "class_atlas",
    "WeightsUnavailableError",
    "explain",
    "explain_text",
    "load",
    "grad_eclip_terms",
    "load_blip",
    "load_classifier",
    "load_clip",
    "prompt_maps",
    "save_figure",
    "plotting",
    "samples",
]
