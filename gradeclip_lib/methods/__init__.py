"""Explanation methods, one module each, registered by name (see `registry`)."""

from . import grad_eclip  # noqa: F401  (registers the method)
from .registry import IMAGE_METHODS, TEXT_METHODS, MethodOutput, register_image, register_text

__all__ = ["IMAGE_METHODS", "TEXT_METHODS", "MethodOutput", "register_image", "register_text"]
