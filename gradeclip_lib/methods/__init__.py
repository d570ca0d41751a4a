"""Explanation methods, one module each, in one registry (`registry`) that says which model families each
applies to. Grad-ECLIP, RISE, the random map and the readout's attention are written once over the family
adapters (`adapters`); the others need one family's insides (a CLIP ViT's every block, a ResNet's stages)."""

from . import (  # noqa: F401  (importing a module registers its methods)
    attention_maps,
    blip,
    classifier,
    clip_surgery,
    game,
    grad_cam,
    grad_eclip,
    legrad,
    legrad_timm,
    m2ib,
    mask_clip,
    random_map,
    readout_attention,
    resnet,
    rise,
)
from .registry import (
    BLIP_METHODS,
    CLASSIFIER_METHODS,
    IMAGE_METHODS,
    RESNET_METHODS,
    TEXT_METHODS,
    MethodInfo,
    MethodOutput,
    method_for,
    methods_of,
    register,
)

__all__ = [
    "BLIP_METHODS",
    "CLASSIFIER_METHODS",
    "IMAGE_METHODS",
    "RESNET_METHODS",
    "TEXT_METHODS",
    "MethodInfo",
    "MethodOutput",
    "method_for",
    "methods_of",
    "register",
]
