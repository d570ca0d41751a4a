"""The paper's analyses of how CLIP matches images and texts, measured on ShapesWorld where every answer
is known: concept decomposition of a caption, attributes and binding, and a word's weight against how
grounded it is in the picture (with the same measurement on real captions for a reader with weights)."""

from .attributes import attribute_binding, attribute_localisation
from .concreteness import (
    concreteness_correlation,
    groundedness,
    read_ratings,
    shapes_word_weights,
    word_weights,
)
from .decomposition import concept_decomposition, decomposition_summary
from .plots import plot_additivity, plot_word_weights
from .tables import attribute_table, decomposition_table, similarity_table
from .words import WORD_CLASSES, word_class

__all__ = [
    "WORD_CLASSES",
    "attribute_binding",
    "attribute_localisation",
    "attribute_table",
    "concept_decomposition",
    "concreteness_correlation",
    "decomposition_summary",
    "decomposition_table",
    "groundedness",
    "plot_additivity",
    "plot_word_weights",
    "read_ratings",
    "shapes_word_weights",
    "similarity_table",
    "word_class",
    "word_weights",
]
