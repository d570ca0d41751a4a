"""The sanity checks of Adebayo et al. on ShapesWorld: each method's maps of the named object, on the trained
model and on a model that should give other maps (copies randomised from the top; the same architecture
trained on shuffled captions), compared scene by scene."""

from __future__ import annotations

import torch

from ..explain import explain
from ..memo import memoized
from ..metrics.localisation import pointing_game
from ..models.clip import Clip
from ..synthetic.scenes import Scene, make_scenes
from .randomise import randomised_copy, stage_names
from .similarity import spearman_per_map, ssim

TOLERANCE = 0.04  # the pointing game's tolerance, a share of the image side (as `shapesworld.localisation`)


def _maps(model: Clip, scenes: list[Scene], options: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps [n, h, w] and upsampled maps [n, H, W] of each scene's first object's phrase."""
    exp = explain(model, [s.image for s in scenes], [s.objects[0].phrase for s in scenes], **options)
    return exp.maps.detach().float(), exp.upsampled().detach().float()


@memoized()
def cascading_randomisation(clip: Clip, methods: dict[str, dict], n: int = 30, n_objects: int = 2,
                            scene_seed: int = 80_000, seed: int = 0, cascading: bool = True) -> list[dict]:
    """For each method (label -> options of `explain`) and each stage (0: trained, then `stage_names`
    re-initialised cumulatively, or one at a time with ``cascading=False``): the Spearman correlation [n]
    (token grid) and SSIM [n] (maps upsampled to the image) of its maps with the trained model's, for the
    first object's phrase of ``n`` scenes."""
    scenes = make_scenes(n, seed=scene_seed, n_objects=n_objects, size=clip.crop_size)
    names = ["trained", *stage_names(clip)]
    models = [clip] + [randomised_copy(clip, k, seed=seed, cascading=cascading) for k in range(1, len(names))]
    rows = []
    for label, options in methods.items():
        reference = _maps(clip, scenes, options)
        for stage, (name, model) in enumerate(zip(names, models)):
            maps, up = reference if stage == 0 else _maps(model, scenes, options)
            rows.append({"method": label, "stage": stage, "randomised": name,
                         "spearman": spearman_per_map(reference[0], maps), "ssim": ssim(reference[1], up)})
    return rows


@memoized()
def data_randomisation(clip: Clip, control: Clip, methods: dict[str, dict], n: int = 100, n_objects: int = 2,
                       scene_seed: int = 80_000) -> list[dict]:
    """For each method: its maps on ``control`` (the same architecture trained on captions shuffled across
    images, `TrainConfig.shuffle_captions`) against its maps on ``clip``, for the first object of ``n``
    scenes: Spearman [n], SSIM [n], and the pointing game's hits [n] on each model."""
    if control.crop_size != clip.crop_size:
        raise ValueError(f"the control sees {control.crop_size}-px images and the model {clip.crop_size}-px ones")
    scenes = make_scenes(n, seed=scene_seed, n_objects=n_objects, size=clip.crop_size)
    masks = torch.stack([torch.from_numpy(s.objects[0].mask) for s in scenes])
    rows = []
    for label, options in methods.items():
        (maps, up), (maps_c, up_c) = _maps(clip, scenes, options), _maps(control, scenes, options)
        rows.append({"method": label, "spearman": spearman_per_map(maps, maps_c), "ssim": ssim(up, up_c),
                     "hits": pointing_game(up, masks, TOLERANCE * clip.crop_size),
                     "hits_control": pointing_game(up_c, masks, TOLERANCE * clip.crop_size)})
    return rows
