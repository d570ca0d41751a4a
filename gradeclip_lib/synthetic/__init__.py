"""ShapesWorld: synthetic scenes with known answers, and a small CLIP trained on them.

>>> scenes = gl.synthetic.make_scenes(4, seed=0, n_objects=(1, 3))
>>> scenes[0].image, scenes[0].caption, scenes[0].objects[0].mask
"""

from .scenes import COLOURS, SHAPES, Scene, SceneObject, make_scenes, make_twin_scenes
from .tokenizer import WordTokenizer

__all__ = ["COLOURS", "SHAPES", "Scene", "SceneObject", "WordTokenizer", "make_scenes", "make_twin_scenes"]
