"""Throughput benchmarks, run side by side in one process so that ratios are comparable.

``python -m gradeclip_lib bench`` times Grad-ECLIP maps per second on ViT-B/16 with random weights
(speed does not depend on the weights): one batched call against a loop of one image at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .adapters import canonical_mode
from .bench_sizes import bench_sizes, report_growth, report_sizes
from .evaluation.speed import bench_evaluation, report_evaluation
from .explain import explain, explain_text
from .hardware import device_name
from .methods import IMAGE_METHODS
from .models import load_clip
from .models.loading import as_dtype
from .shapesworld.speed import bench_training, report_training


@dataclass
class BenchResult:
    what: str
    device: str
    dtype: str
    batch: int
    maps: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.maps / self.seconds


def _timed(fn: Callable[[], None], device: str, repeats: int) -> float:
    fn()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def _inputs(model: str, device: str, dtype: str, batch: int, size: int):
    """A random-weight model and seeded random inputs: ``batch`` images of ``size`` px and unit text embeddings."""
    clip = load_clip(model, pretrained=None, device=device, dtype=as_dtype(dtype))
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, 3, size, size, generator=gen).to(device, clip.dtype)
    texts = torch.nn.functional.normalize(torch.randn(batch, clip.visual.output_dim, generator=gen), dim=-1)
    return clip, pixels, texts.to(device)


def bench_grad_eclip(
    model: str = "ViT-B-16-quickgelu",
    device: str = "cpu",
    dtype: str = "fp32",
    batch: int = 8,
    repeats: int = 2,
    size: int = 224,
    mode: str = "forward",
) -> list[BenchResult]:
    """Grad-ECLIP maps/s: one call on ``batch`` images against ``batch`` calls of one image."""
    mode = canonical_mode(mode)
    clip, pixels, texts = _inputs(model, device, dtype, batch, size)

    def batched() -> None:
        explain(clip, pixels, texts, mode=mode)

    def one_by_one() -> None:
        for i in range(batch):
            explain(clip, pixels[i], texts[i], mode=mode)

    @torch.no_grad()
    def forward() -> None:
        clip.model.encode_image(pixels)

    results = []
    for what, fn in (("batched", batched), ("one at a time", one_by_one), ("forward only", forward)):
        seconds = _timed(fn, device, repeats)
        label = "encode_image, forward only" if fn is forward else f"grad_eclip {mode}, {what}"
        results.append(BenchResult(label, device, dtype, batch, batch, seconds))
    return results


# Options that keep the stochastic methods' CPU cost measurable; the defaults are used on a GPU.
CPU_OPTIONS = {"rise": {"n_masks": 100, "batch": 50}}


def bench_methods(
    methods: list[str] | None = None,
    model: str = "ViT-B-16-quickgelu",
    device: str = "cpu",
    dtype: str = "fp32",
    batch: int = 2,
    size: int = 224,
    repeats: int = 1,
) -> list[BenchResult]:
    """Maps per second of each image method, one batched call of ``batch`` images each."""
    clip, pixels, texts = _inputs(model, device, dtype, batch, size)
    results = []
    for name in methods or sorted(IMAGE_METHODS):
        options = CPU_OPTIONS.get(name, {}) if device == "cpu" else {}
        seconds = _timed(lambda name=name, options=options: explain(clip, pixels, texts, method=name, **options),
                         device, repeats)
        label = name + "".join(f", {k}={v}" for k, v in options.items() if k != "batch")
        results.append(BenchResult(label, device, dtype, batch, batch, seconds))
    return results


def bench_prompts(model: str = "ViT-B-16-quickgelu", device: str = "cpu", dtype: str = "fp32", size: int = 224,
                  counts: tuple[int, ...] = (1, 10, 100, 1000), per_prompt_chunk: int = 100,
                  mode: str = "forward") -> list[dict]:
    """One image against T precomputed text embeddings: seconds for the shared route (one forward pass,
    one Jacobian) and for the per-prompt route (a forward and backward pass per text, in chunks of
    ``per_prompt_chunk`` pairs), side by side, with one forward pass of the image tower for scale; and
    the same for one text's word weights against T image embeddings (the per-image route up to
    ``per_prompt_chunk`` images)."""
    mode = canonical_mode(mode)
    clip, pixels, _ = _inputs(model, device, dtype, 1, size)
    gen = torch.Generator().manual_seed(1)
    texts = torch.nn.functional.normalize(torch.randn(max(counts), clip.visual.output_dim, generator=gen), dim=-1)
    texts = texts.to(device)

    @torch.no_grad()
    def forward() -> None:
        clip.model.encode_image(pixels)

    rows = [{"what": "encode_image, forward only", "prompts": 0, "seconds": _timed(forward, device, 3)}]
    for count in counts:
        for route, shared in (("shared", True), ("per prompt", False)):
            def run(count=count, shared=shared) -> None:
                explain(clip, pixels[0], texts[:count], mode=mode, shared=shared,
                        batch_size=None if shared else per_prompt_chunk)
            repeats = 1 if (not shared and count >= 100) else 2
            seconds = _timed(run, device, repeats)
            rows.append({"what": f"grad_eclip {mode}, {route}", "prompts": count, "seconds": seconds})
    text = "a photo of a small dog sitting on a red sofa next to a cat"
    images = torch.nn.functional.normalize(torch.randn(max(counts), clip.visual.output_dim, generator=gen), dim=-1)
    for count in counts:
        for route, shared in (("shared", True), ("per image", False)):
            if not shared and count > per_prompt_chunk:
                continue  # the text tower run once per image: minutes on a CPU at 1 000
            def run_text(count=count, shared=shared) -> None:
                explain_text(clip, images[:count].to(device), text, mode=mode, shared=shared)
            seconds = _timed(run_text, device, 1 if count >= 100 else 2)
            rows.append({"what": f"text grad_eclip {mode}, {route}", "prompts": count, "seconds": seconds})
    for row in rows:
        row.update(device=device, dtype=dtype, size=size)
    return rows


def report_prompts(rows: list[dict]) -> str:
    """Prompts per second of each route, and each route's time in forward passes of the image tower."""
    forward = next(r["seconds"] for r in rows if r["prompts"] == 0)
    lines = [f"one {rows[0]['size']} px image, one forward pass of the image tower: {forward * 1000:.0f} ms",
             f"{'route':<32} {'prompts':>7} {'prompts/s':>10} {'forwards':>9}"]
    for r in rows[1:]:
        lines.append(f"{r['what']:<32} {r['prompts']:>7} {r['prompts'] / r['seconds']:>10.3g} "
                     f"{r['seconds'] / forward:>9.2f}")
    by = {(r["what"].split(", ")[-1], r["prompts"]): r["seconds"] for r in rows[1:] if not r["what"].startswith("text")}
    for count in sorted({r["prompts"] for r in rows[1:]}):
        if ("shared", count) in by and ("per prompt", count) in by:
            lines.append(f"ratio shared / per prompt at {count} prompts: "
                         f"{by['per prompt', count] / by['shared', count]:.1f}x faster")
    text = {(r["what"].split(", ")[-1], r["prompts"]): r["seconds"] for r in rows if r["what"].startswith("text")}
    for count in sorted({p for _, p in text}):
        if ("shared", count) in text and ("per image", count) in text:
            lines.append(f"text: ratio shared / per image at {count} images: "
                         f"{text['per image', count] / text['shared', count]:.1f}x faster")
    return "\n".join(lines)


def report(results: list[BenchResult]) -> str:
    """A plain-text table of results with the batched / sequential ratio per device and dtype."""
    lines = [f"{'what':<34} {'device':<7} {'dtype':<5} {'batch':>5} {'maps/s':>9} {'ms/map':>9}"]
    for r in results:
        lines.append(f"{r.what:<34} {r.device:<7} {r.dtype:<5} {r.batch:>5} {r.per_second:>9.3g} "
                     f"{1000 / r.per_second:>9.1f}")
    pairs = {}
    for r in results:
        pairs.setdefault((r.device, r.dtype, r.batch), {})[r.what.split(", ")[-1]] = r.per_second
    for (dev, dt, b), rates in pairs.items():
        if "batched" in rates and "one at a time" in rates:
            lines.append(f"ratio batched / one at a time ({dev}, {dt}, batch {b}): "
                         f"{rates['batched'] / rates['one at a time']:.2f}x")
        if "batched" in rates and "forward only" in rates:
            lines.append(f"ratio Grad-ECLIP maps / forward-only images ({dev}, {dt}, batch {b}): "
                         f"{rates['batched'] / rates['forward only']:.2f}")
    return "\n".join(lines)


def run(devices: list[str] | None = None, batch_cpu: int = 8, batch_gpu: int = 256,
        out: str | None = None, methods: list[str] | None = None, evaluation: bool = False,
        eval_images: int | None = None, training: bool = False, prompts: bool = False, sizes: bool = False,
        max_pixels: int | None = None, authors: str | None = None) -> list[BenchResult]:
    """The standard benchmark: CPU fp32 always, CUDA bf16 at batch 256 when a GPU is present; with
    ``methods`` (names, or ["all"]) also the maps/s of each explanation method; with ``evaluation`` the
    deletion + insertion throughput against the per-image loop (8 images on CPU, 512 on a GPU); with
    ``training`` the seconds per ShapesWorld training step of each preset and precision; with ``prompts``
    one image against 1 to 1 000 text embeddings, the shared route against one backward pass per text; with
    ``sizes`` seconds and peak memory from 224 px to a 12-megapixel photo (up to ``max_pixels``), a forward
    pass against a Grad-ECLIP map, each size in a fresh process (`bench_sizes`); with ``authors`` (a clone of
    their repository) paper mode against their ``generate_emap.py``."""
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if methods == ["all"]:
        methods = sorted(IMAGE_METHODS)
    results: list[BenchResult] = []
    for device in devices:
        gpu = device.startswith("cuda")
        results += bench_grad_eclip(device=device, dtype="bf16" if gpu else "fp32",
                                    batch=batch_gpu if gpu else batch_cpu, repeats=5 if gpu else 2)
        if methods:
            results += bench_methods(methods, device=device, dtype="bf16" if gpu else "fp32",
                                     batch=32 if gpu else 2)
    evaluated: list[dict] = []
    if evaluation:
        for device in devices:
            gpu = device.startswith("cuda")
            n = eval_images or (512 if gpu else 8)
            evaluated += bench_evaluation(device=device, dtype="bf16" if gpu else "fp32", n_images=n,
                                          loop_images=min(n, 32), batch_size=64 if gpu else 8,
                                          workers=8 if gpu else 0)
    trained: list[dict] = []
    if training:
        for device in devices:
            trained += bench_training(device=device, batch=256 if device == "cpu" else 512)
    prompted: list[dict] = []
    if prompts:
        for device in devices:
            gpu = device.startswith("cuda")
            prompted += bench_prompts(device=device, dtype="bf16" if gpu else "fp32")
    sized = bench_sizes(devices, max_pixels=max_pixels, authors=authors) if sizes else []
    for device in devices:
        print(f"# {device}: {device_name(device)}; torch {torch.__version__}")
    print(report(results))
    if evaluated:
        print(report_evaluation(evaluated))
    if trained:
        print(report_training(trained))
    if prompted:
        print(report_prompts(prompted))
    if sized:
        print(report_sizes(sized))
        print(report_growth(sized))
    if out:
        rows = [dict(asdict(r), per_second=r.per_second, device_name=device_name(r.device)) for r in results]
        rows += [dict(r, device_name=device_name(r["device"])) for r in evaluated + trained + prompted + sized]
        with open(out, "w") as fh:
            json.dump(rows, fh, indent=1)
    return results
