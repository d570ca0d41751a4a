"""Where the time of a ShapesWorld training step goes: seconds per step of each preset under fp32,
bf16 autocast, and bf16 with the plain (math) attention kernel, timed side by side in one process on
the same batches (``python -m gradeclip_lib bench --training``)."""

from __future__ import annotations

import contextlib
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..models.shapes import build_model, default_config
from ..synthetic.data import render_scenes
from ..training.steps import contrastive_loss, normalized_pixels

# label -> (autocast dtype or None, attention backend or None for PyTorch's choice)
VARIANTS = {
    "fp32": (None, None),
    "bf16": (torch.bfloat16, None),
    "bf16 + math attention": (torch.bfloat16, SDPBackend.MATH),
}


def _context(dtype: torch.dtype | None, backend: SDPBackend | None, device: torch.device):
    stack = contextlib.ExitStack()
    if dtype is not None:
        stack.enter_context(torch.autocast(device.type, dtype=dtype))
    if backend is not None:
        stack.enter_context(sdpa_kernel(backend))
    return stack


def _step(model, opt, data, idx: torch.Tensor, dtype, backend, dev: torch.device) -> None:
    """One training step on the scenes ``idx`` (forward, contrastive loss, backward, AdamW)."""
    with _context(dtype, backend, dev):
        img = model.encode_image(normalized_pixels(data.images[idx], dev))
        txt = model.encode_text(data.ids[idx].to(dev))
        loss = contrastive_loss(img.float(), txt.float(), data.image_sets[idx].to(dev),
                                data.caption_sets[idx].to(dev), model.logit_scale.exp(), "same")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench_training(presets: tuple[str, ...] = ("small", "base"), variants: tuple[str, ...] = tuple(VARIANTS),
                   batch: int = 256, steps: int = 5, device: str = "cpu") -> list[dict]:
    """Seconds per training step (forward, backward, AdamW) for each preset and variant: the mean of
    ``steps`` steps after two warm-up steps, on the same rendered scenes."""
    dev = torch.device(device)
    results = []
    for preset in presets:
        cfg = default_config(preset)
        data = render_scenes(batch * 2, seed=0, size=cfg["vision_cfg"]["image_size"], workers=1, progress=False)
        for label in variants:
            dtype, backend = VARIANTS[label]
            torch.manual_seed(0)
            model = build_model(cfg).to(dev)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            gen = torch.Generator().manual_seed(0)
            batches = [torch.randint(len(data), (batch,), generator=gen) for _ in range(steps + 2)]
            for idx in batches[:2]:  # warm-up
                _step(model, opt, data, idx, dtype, backend, dev)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for idx in batches[2:]:
                _step(model, opt, data, idx, dtype, backend, dev)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / steps
            results.append({"what": f"ShapesWorld training step, {preset}, {label}", "preset": preset,
                            "variant": label, "device": device, "batch": batch, "seconds_per_step": seconds})
    return results


def report_training(results: list[dict]) -> str:
    """A plain-text table, with each variant's speed-up over fp32 for the same preset."""
    base = {r["preset"]: r["seconds_per_step"] for r in results if r["variant"] == "fp32"}
    lines = [f"{'training step':<56} {'batch':>5} {'s/step':>7} {'vs fp32':>8}"]
    for r in results:
        ratio = f"{base[r['preset']] / r['seconds_per_step']:.2f}x" if r["preset"] in base else ""
        lines.append(f"{r['what']:<56} {r['batch']:>5} {r['seconds_per_step']:>7.3f} {ratio:>8}")
    return "\n".join(lines)
