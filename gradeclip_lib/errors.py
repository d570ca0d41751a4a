"""Exceptions that tell the user what went wrong and what to do about it."""

from __future__ import annotations


class GradEclipError(Exception):
    """Base class of every error this library raises on purpose."""


class WeightsUnavailableError(GradEclipError, RuntimeError):
    """Pretrained weights are neither cached nor downloadable (offline, unknown tag)."""


class TokenizerUnavailableError(WeightsUnavailableError):
    """A model's tokenizer is neither cached nor downloadable (SigLIP's come from the Hugging Face hub); the
    model itself still runs, and text embeddings work in place of strings."""


class ImageError(GradEclipError, ValueError):
    """An image could not be read, or is too small for the model."""


class ImageTooLargeError(ImageError, MemoryError):
    """An image too large for the method asked on this machine, said before any computation: how much memory it
    would need, how much is free, and what fits (a smaller size, a method whose memory grows linearly)."""


class TextError(GradEclipError, ValueError):
    """A text input the model cannot take: not a string, or an embedding of the wrong width or with NaN."""


class TextTooLongError(TextError):
    """A text does not fit in the model's context (77 tokens for CLIP)."""


class UnknownWordError(TextError):
    """A text uses words that a word-level model (ShapesWorld's) never saw in training."""


class UnsupportedModelError(GradEclipError, TypeError, ValueError):
    """The model (or its image tower) is not one this library explains, or not with this method (the message
    names the methods that apply). A TypeError and, for code that caught an unknown method, a ValueError."""


class DatasetError(GradEclipError, ValueError):
    """An image folder does not have the expected ``DIR/<class>/<image>`` layout."""
