"""Grad-ECLIP for supervised ViT classifiers (timm): the same three terms, explaining a class logit (or
its probability) instead of an image-text cosine, as the authors' ``gradeclip_adaptation_vit``."""

from .classifier import Classifier
from .loading import load_classifier

__all__ = ["Classifier", "load_classifier"]
