"""Every explanation method on an accelerator, in fp32 and bf16, against the same call on the CPU in fp32.

Run on a machine with a GPU (the test suite cannot): ``python tools/device_check.py --device cuda --out
FILE.json``. For each model (a random-weight ViT-B/16 and the shipped ShapesWorld CLIP), each image method
on two photos in keep-size mode (non-square token grids) and each text method, it records whether the maps
are finite and of the CPU's shape, and their Pearson correlation with the CPU fp32 maps. ``--device cpu``
compares the CPU with itself in bf16, which is how this script is checked without a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

import gradeclip_lib as gl
from gradeclip_lib.methods import IMAGE_METHODS, TEXT_METHODS
from gradeclip_lib.models.shapes import SHAPES_DIR
from gradeclip_lib.samples import sample_image

# Stochastic and costly methods: small settings, fixed seeds (the masks and noise are drawn on the CPU
# generator where the method allows it; the correlation then says how far the device's arithmetic drifts).
OPTIONS = {"rise": {"n_masks": 500, "seed": 0}, "m2ib": {"steps": 5, "seed": 0}, "random": {"seed": 0}}
PROMPTS = ["a cat", "a cup of coffee"]


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denominator = a.norm() * b.norm()
    return float((a @ b) / denominator) if denominator > 0 else float(torch.equal(a, b))


def _maps(explanation) -> list[torch.Tensor]:
    maps = explanation.maps
    return [m.float().cpu() for m in (maps if isinstance(maps, list) else list(maps))]


def _compare(reference: list[torch.Tensor], other: list[torch.Tensor]) -> dict:
    same_shape = [tuple(r.shape) == tuple(o.shape) for r, o in zip(reference, other)]
    finite = all(bool(torch.isfinite(o).all()) for o in other)
    corr = [_correlation(r, o) for r, o, s in zip(reference, other, same_shape) if s]
    return {"shapes_match": all(same_shape), "finite": finite, "min_corr": min(corr) if corr else None}


def check_model(name: str, clip_for, images: list, texts: list[str], device: str) -> list[dict]:
    """Rows of one model: every image and text method on ``device`` in fp32 and bf16 against the CPU."""
    rows = []
    reference_clip, runs = clip_for("cpu", None), [(dt, clip_for(device, dt)) for dt in ("fp32", "bf16")]
    for method in sorted(IMAGE_METHODS):
        options = OPTIONS.get(method, {})
        reference = _maps(gl.explain(reference_clip, images, texts, method=method, **options))
        for dtype, clip in runs:
            start = time.perf_counter()
            try:
                maps = _maps(gl.explain(clip, images, texts, method=method, **options))
                row = _compare(reference, maps)
            except Exception as error:  # noqa: BLE001 (the report lists every failure, then the script fails)
                row = {"error": f"{type(error).__name__}: {error}"}
            rows.append({"model": name, "kind": "image", "method": method, "device": device, "dtype": dtype,
                         "seconds": round(time.perf_counter() - start, 3),
                         "grids": [list(m.shape) for m in reference], **row})
    for method in sorted(TEXT_METHODS):
        options = OPTIONS.get(method, {})
        reference = [t.scores.float() for t in gl.explain_text(reference_clip, images[0], texts, method=method,
                                                               **options)]
        for dtype, clip in runs:
            try:
                scores = [t.scores.float().cpu() for t in gl.explain_text(clip, images[0], texts, method=method,
                                                                          **options)]
                row = _compare(reference, scores)
            except Exception as error:  # noqa: BLE001
                row = {"error": f"{type(error).__name__}: {error}"}
            rows.append({"model": name, "kind": "text", "method": method, "device": device, "dtype": dtype, **row})
    return rows


def passed(row: dict, fp32_corr: float = 0.99, bf16_corr: float = 0.9) -> bool:
    """A method passes when it runs, keeps the CPU's grid, stays finite and follows the CPU's maps."""
    if "error" in row or not row["shapes_match"] or not row["finite"]:
        return False
    if row["method"] == "random":  # seeded noise: only its shape and finiteness are comparable
        return True
    return row["min_corr"] is not None and row["min_corr"] >= (fp32_corr if row["dtype"] == "fp32" else bf16_corr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=None, help="write the rows as JSON")
    parser.add_argument("--models", default="ViT-B-16,shapes", help="comma-separated")
    parser.add_argument("--shapes-dir", default=str(SHAPES_DIR), help="the ShapesWorld model to check")
    args = parser.parse_args(argv)
    photos = [sample_image("chelsea"), sample_image("coffee")]
    rows = []
    for name in args.models.split(","):
        if name == "shapes":
            from gradeclip_lib.synthetic import make_scenes

            scenes = make_scenes(2, seed=7, n_objects=3)
            images, texts = [s.image for s in scenes], [s.objects[0].phrase for s in scenes]
            pretrained = args.shapes_dir
        else:
            images, texts, pretrained = photos, PROMPTS, None

        def clip_for(device: str, dtype: str | None, name=name, pretrained=pretrained):
            return gl.load_clip(name, pretrained=pretrained, device=device, dtype=dtype)

        rows += check_model(name, clip_for, images, texts, args.device)
    bad = [r for r in rows if not passed(r)]
    for r in rows:
        status = "ok " if passed(r) else "BAD"
        detail = r.get("error") or f"corr {r['min_corr']:.4f}" if r.get("min_corr") is not None else r.get("error", "")
        print(f"{status} {r['model']:10s} {r['kind']:5s} {r['method']:15s} {r['dtype']} {detail}")
    print(f"{len(rows) - len(bad)} of {len(rows)} passed on {args.device}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
