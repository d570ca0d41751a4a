"""Models: the `Clip` wrapper around an open_clip model and `load_clip`, which builds one from a name."""

from .clip import Clip
from .loading import load_clip

__all__ = ["Clip", "load_clip"]
