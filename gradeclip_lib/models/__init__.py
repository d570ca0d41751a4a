"""Models: the `Clip` wrapper around an open_clip model, `load_clip`, which builds one from a name, the table of
the models this project ships (`names`), the ShapesWorld CLIP's architecture (`shapes`), and the towers'
forward passes composed from the model's own modules (`towers`, `passes`, `resnet_tower`, `single_head`)."""

from .clip import Clip
from .loading import load_clip

__all__ = ["Clip", "load_clip"]
