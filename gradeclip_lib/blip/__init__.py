"""Grad-ECLIP for BLIP image-text retrieval (Hugging Face ``BlipForImageTextRetrieval``): on the ITC
cosine (vision class token against text class token), as the authors' BLIP notebook, and the ITM head's
established gradient-weighted cross-attention map."""

from .loading import load_blip
from .model import Blip

__all__ = ["Blip", "load_blip"]
