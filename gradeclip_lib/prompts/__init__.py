"""Many prompts on one image: Grad-ECLIP maps of any number of texts from one forward pass (`prompt_maps`),
the maps of every class of a zero-shot classifier and the class that best explains a region
(`class_atlas`)."""

from .atlas import Atlas, class_atlas
from .maps import PromptMaps, prompt_maps

__all__ = ["Atlas", "PromptMaps", "class_atlas", "prompt_maps"]
