"""Maps and scores of every method on every model family, on tiny random models and non-square images:
the reference that a refactoring of the explainer core must reproduce (`tests/test_core_reference.py`).

``python tools/reference_maps.py`` writes ``tests/data/reference_maps.pt`` with the library as it is; the
test recomputes the same entries with the library as it is then and compares them to 1e-5. The tiny
models are built by the tests' own builders (tests/conftest.py, test_classifiers.py, test_blip.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "reference_maps.pt"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import make_tiny_clip, make_tiny_resnet_clip, random_image  # noqa: E402

import gradeclip_lib as gl  # noqa: E402

FAST = {"rise": {"n_masks": 40, "batch": 16}, "m2ib": {"steps": 3, "samples": 2}, "itm_gradcam": {"layer": 0}}
METHODS = {  # the methods of each family at the release the reference is taken from
    "clip_vit": ["clip_surgery", "game", "grad_cam", "grad_eclip", "m2ib", "mask_clip", "random", "rise", "rollout",
                 "self_attention"],
    "clip_resnet": ["grad_cam", "grad_eclip", "m2ib", "random", "rise", "self_attention"],
    "timm_vit": ["grad_cam", "grad_eclip", "random", "self_attention"],
    "blip": ["grad_eclip", "itm_gradcam", "random", "self_attention"],
}
VARIANTS = {  # further options, per family and method
    "clip_vit": {"grad_eclip": [{"mode": "paper"}, {"qk": "width"}, {"spatial_weight": False}, {"shared": False},
                                {"shared": True}, {"mode": "paper", "shared": True}, {"qk": "width", "shared": True}]},
    "clip_resnet": {"grad_eclip": [{"qk": "width"}, {"spatial_weight": False}]},
    "timm_vit": {"grad_eclip": [{"probability": True}, {"spatial_weight": False}], "grad_cam": [{"probability": True}]},
    "blip": {"grad_eclip": [{"qk": "width"}, {"spatial_weight": False}], "itm_gradcam": [{"probability": True}]},
}


def tiny_models() -> dict[str, tuple[object, list, list]]:
    """Each family's tiny random model with its pairs: images of two sizes, one of them given twice (so that
    texts share an image), and what each image is explained against."""
    from test_blip import tiny_blip
    from test_classifiers import tiny_classifier

    def three(h1: int, w1: int, h2: int, w2: int, seed: int) -> list:
        a = random_image(h1, w1, seed)
        return [a, a, random_image(h2, w2, seed + 1)]

    return {
        "clip_vit": (make_tiny_clip(), three(40, 56, 33, 70, 1), ["a red circle", "a photo of a dog", "a dog"]),
        "clip_resnet": (make_tiny_resnet_clip(), three(64, 96, 96, 64, 3), ["a red circle", "a dog", "a dog"]),
        "timm_vit": (tiny_classifier(), three(32, 48, 40, 32, 5), [1, 3, 3]),
        "blip": (tiny_blip(), three(32, 48, 40, 32, 7), ["a red circle", "a photo of a dog on grass", "a dog"]),
    }


def _key(family: str, method: str, options: dict) -> str:
    extra = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
    return f"{family}/{method}" + (f"/{extra}" if extra else "")


def entries(families: list[str] | None = None) -> dict[str, Callable[[], dict[str, torch.Tensor]]]:
    """Name -> a function computing that entry's tensors (so that a test can compute only some)."""
    models = tiny_models()
    jobs: dict[str, Callable[[], dict[str, torch.Tensor]]] = {}
    for family, (model, images, texts) in models.items():
        if families is not None and family not in families:
            continue
        for method in METHODS[family]:
            for variant in [{}, *VARIANTS[family].get(method, [])]:
                options = {**FAST.get(method, {}), **variant}

                def run(model=model, images=images, texts=texts, method=method, options=options):
                    exp = gl.explain(model, images, texts, method=method, **options)
                    maps = exp.maps if isinstance(exp.maps, torch.Tensor) else torch.cat([m.flatten()
                                                                                          for m in exp.maps])
                    return {"maps": maps.float(), "scores": exp.scores.float()}

                jobs[_key(family, method, variant)] = run
        if family in ("clip_vit", "clip_resnet"):
            for variant in ({}, {"qk": "width"}, {"spatial_weight": False}) + (({"mode": "paper"},)
                                                                                if family == "clip_vit" else ()):
                def terms(model=model, images=images, texts=texts, variant=variant):
                    t = gl.grad_eclip_terms(model, images[:2], texts[:2], **variant)
                    out = {"w": t.w, "score": t.score, "emap": t.emap(),
                           "gradient_times_value": t.gradient_times_value(), "spatial_weight": t.spatial_weight()}
                    return {k: v.detach().float() for k, v in out.items()}

                jobs[_key(family, "grad_eclip_terms", variant)] = terms
    if families is None or "clip_vit" in families:
        model, images, texts = models["clip_vit"]
        for mode in ("forward", "paper"):
            def prompts(model=model, image=images[2], texts=texts, mode=mode):
                exp = gl.prompt_maps(model, image, mode=mode)(texts)
                return {"maps": exp.maps.float(), "scores": exp.scores.float()}

            jobs[_key("clip_vit", "prompt_maps", {"mode": mode})] = prompts
    return jobs


def compute(families: list[str] | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Every entry's tensors, computed with the library as it is now."""
    return {name: job() for name, job in entries(families).items()}


def main() -> None:
    result = compute()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result, OUT)
    size = OUT.stat().st_size
    print(f"{len(result)} entries, {size / 1024:.0f} KB -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
