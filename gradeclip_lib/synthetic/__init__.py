"""ShapesWorld, the synthetic world whose right answers are known: scenes, objects and masks, its words and
tokenizer, scenes rendered as tensors or written as an image folder. Its models are in `models` (CLIP) and
`shapesworld` (the trainers and the experiments).

>>> scenes = gl.synthetic.make_scenes(4, seed=0, n_objects=(1, 3))
>>> scenes[0].image, scenes[0].caption, scenes[0].objects[0].mask
"""

from .scenes import COLOURS, SHAPES, Scene, SceneObject, make_scenes, make_twin_scenes
from .tokenizer import WordTokenizer

__all__ = ["COLOURS", "SHAPES", "Scene", "SceneObject", "WordTokenizer", "make_scenes", "make_twin_scenes"]
