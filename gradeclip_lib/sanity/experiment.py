"""The model-parameter randomisation test on ShapesWorld: each method's maps of the named object, on the
trained model and on copies randomised from the top, compared scene by scene."""

from __future__ import annotations

from ..explain import explain
from ..memo import memoized
from ..models.clip import Clip
from ..synthetic.scenes import make_scenes
from .randomise import randomised_copy, stage_names
from .similarity import spearman_per_map, ssim


@memoized()
def cascading_randomisation(clip: Clip, methods: dict[str, dict], n: int = 30, n_objects: int = 2,
                            scene_seed: int = 80_000, seed: int = 0, cascading: bool = True) -> list[dict]:
    """For each method (label -> options of `explain`) and each stage (0: trained, then `stage_names`
    re-initialised cumulatively, or one at a time with ``cascading=False``): the Spearman correlation [n]
    (token grid) and SSIM [n] (maps upsampled to the image) of its maps with the trained model's, for the
    first object's phrase of ``n`` scenes."""
    size = clip.preprocess_cfg.size
    side = size if isinstance(size, int) else size[0]
    scenes = make_scenes(n, seed=scene_seed, n_objects=n_objects, size=side)
    images, phrases = [s.image for s in scenes], [s.objects[0].phrase for s in scenes]
    names = ["trained", *stage_names(clip)]
    models = [clip] + [randomised_copy(clip, k, seed=seed, cascading=cascading) for k in range(1, len(names))]
    rows = []
    for label, options in methods.items():
        reference = None
        for stage, (name, model) in enumerate(zip(names, models)):
            exp = explain(model, images, phrases, **options)
            maps, up = exp.maps.detach().float(), exp.upsampled().detach().float()
            if reference is None:
                reference = (maps, up)
            rows.append({"method": label, "stage": stage, "randomised": name,
                         "spearman": spearman_per_map(reference[0], maps), "ssim": ssim(reference[1], up)})
    return rows

