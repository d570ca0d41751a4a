"""Explanation methods, one module each, registered by name behind one interface (see `registry`)."""

from . import (  # noqa: F401  (importing a module registers its methods)
    attention_maps,
    clip_surgery,
    game,
    grad_cam,
    grad_eclip,
    m2ib,
    mask_clip,
    random_map,
    resnet,
    rise,
)
from .registry import (
    IMAGE_METHODS,
    RESNET_METHODS,
    TEXT_METHODS,
    MethodOutput,
    register_image,
    register_resnet,
    register_text,
)

__all__ = [
    "IMAGE_METHODS",
    "RESNET_METHODS",
    "TEXT_METHODS",
    "MethodOutput",
    "register_image",
    "register_resnet",
    "register_text",
]
