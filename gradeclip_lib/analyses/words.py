"""ShapesWorld's words by role: object words name what is drawn (colours, shapes), function words
join phrases ("a", "an", "and"), template words come from the caption's template and no pixel decides
them ("photo", "lovely", ...)."""

from __future__ import annotations

from ..synthetic.scenes import COLOURS, SHAPES

FUNCTION_WORDS = ("a", "an", "and")
WORD_CLASSES = ("object", "function", "template")


def word_class(word: str) -> str:
    """'object', 'function' or 'template' for a ShapesWorld word."""
    if word in COLOURS or word in SHAPES:
        return "object"
    return "function" if word in FUNCTION_WORDS else "template"
