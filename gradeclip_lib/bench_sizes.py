"""How time and memory grow with the image: ``python -m gradeclip_lib bench --sizes``.

For each size, from 224 px to a 12-megapixel photo, a fresh process builds ViT-B/16 with random weights (speed
and memory do not depend on them), times one forward pass of the image at its own size and then one
Grad-ECLIP map of it, and reads the peak memory of each (the resident peak on a CPU, reset before each
call through Linux's ``/proc/self/clear_refs``; the allocator's peak on a GPU), and the memory before them
(the model and the image). A fresh process per size, so that no size inherits another's caches. The growth
exponents are least-squares slopes of log time and log memory against log patches."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence

SIZES = [(224, 224), (448, 448), (640, 480), (1024, 768), (1600, 1200), (2048, 1536), (3000, 2000), (4032, 3024)]
MODEL = "ViT-B-16"
AUTHORS_MODEL = "ViT-B-16-quickgelu"  # OpenAI's architecture, which the authors' code builds

_CHILD = r"""
import ctypes, json, sys, time
import torch
import gradeclip_lib as gl
from gradeclip_lib.adapters import adapter_for
from gradeclip_lib.images import prepare

width, height, device, dtype, model, authors = json.loads(sys.argv[1])
gpu = device.startswith("cuda")

def status_mb(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field)) / 1024

def reset_peak():  # Linux: the resident peak (VmHWM) starts again from the current resident memory
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    else:  # freed memory goes back to the system first, so that no call reuses what an earlier one held
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")

def current_mb():
    return torch.cuda.memory_allocated() / 2**20 if gpu else status_mb("VmRSS:")

def peak_mb():
    if gpu:
        return torch.cuda.max_memory_allocated() / 2**20
    return status_mb("VmHWM:")

def timed(fn):
    if gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if gpu:
        torch.cuda.synchronize()
    return out, time.perf_counter() - start

clip = gl.load_clip(model, pretrained=None, device=device, dtype=dtype)
photo = gl.images.from_array(torch.randint(0, 256, (height, width, 3), generator=torch.Generator().manual_seed(0),
                                           dtype=torch.uint8).numpy())
text = torch.nn.functional.normalize(torch.randn(1, clip.embed_dim, generator=torch.Generator().manual_seed(1)), dim=-1)
pixels, _ = prepare([photo], clip.patch_size, clip.mean, clip.std)
batch = pixels[0][None].to(device, clip.dtype)
reset_peak()
base = current_mb()
_, forward_s = timed(lambda: adapter_for(clip).features(batch))
forward_mb = peak_mb()
reset_peak()
options = {"mode": "paper"} if authors else {}  # the authors' computation is paper mode's
exp, explain_s = timed(lambda: gl.explain(clip, photo, text.to(device), **options))
explain_mb = peak_mb()
row = {"width": width, "height": height, "grid": list(exp.maps.shape[-2:]),
       "patches": int(exp.maps.shape[-2] * exp.maps.shape[-1]), "device": device, "dtype": dtype, "model": model,
       "mode": options.get("mode", "default"), "forward_s": forward_s, "grad_eclip_s": explain_s, "base_mb": base,
       "forward_peak_mb": forward_mb, "grad_eclip_peak_mb": explain_mb}
if authors:
    from gradeclip_lib.authors_code import authors_functions, authors_map, openai_model

    functions = authors_functions(authors, openai_model(clip.model))
    if not gpu:  # an allocation past the free memory fails cleanly instead of swapping the machine
        import resource
        import psutil
        limit = int(psutil.Process().memory_info().vms + 0.9 * psutil.virtual_memory().available)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    reset_peak()
    row["authors_base_mb"] = current_mb()
    try:
        (theirs, _), authors_s = timed(lambda: authors_map(functions, batch, text[0].to(device)))
        row.update(authors_s=authors_s, authors_peak_mb=peak_mb(),
                   authors_max_diff=float((theirs.float() - exp.maps[0].float()).abs().max()),
                   authors_max=float(theirs.float().abs().max()))
    except (RuntimeError, MemoryError) as err:
        row.update(authors_error=str(err).strip().splitlines()[0][:200], authors_peak_mb=peak_mb())
print(json.dumps(row))
"""


def measure(width: int, height: int, device: str = "cpu", dtype: str = "fp32", model: str = MODEL,
            timeout: float | None = None, authors: str | None = None) -> dict:
    """One size in a fresh process: seconds and peak memory of a forward pass and of a Grad-ECLIP map; with
    ``authors`` (a clone of their repository), the map in paper mode and the same map by their code."""
    args = [width, height, device, dtype, model, str(authors) if authors else None]
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        return {"width": width, "height": height, "device": device, "dtype": dtype, "model": model,
                "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def growth_exponent(rows: Sequence[dict], key: str, min_patches: int = 1000) -> float:
    """The slope of log ``key`` against log patches over the rows with at least ``min_patches`` patches (below,
    fixed costs hide the growth); for memory, of the peak above the process's memory before the image."""
    points = [(math.log(r["patches"]), math.log(_value(r, key))) for r in rows
              if "error" not in r and r["patches"] >= min_patches and _value(r, key) > 0]
    if len(points) < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def _value(row: dict, key: str) -> float:
    return row[key] - row["base_mb"] if key.endswith("_mb") else row[key]


def bench_sizes(devices: Sequence[str], sizes: Sequence[tuple[int, int]] = SIZES, max_pixels: int | None = None,
                progress: bool = True, authors: str | None = None) -> list[dict]:
    """`measure` for every size (up to ``max_pixels``) on every device: fp32 on a CPU, bf16 and fp32 on a GPU.
    With ``authors`` (a clone of their repository), on OpenAI's architecture (QuickGELU), paper mode against
    their ``generate_emap.py`` in the same process."""
    model = AUTHORS_MODEL if authors else MODEL
    rows = []
    for device in devices:
        for dtype in (("bf16", "fp32") if device.startswith("cuda") else ("fp32",)):
            for width, height in sizes:
                if max_pixels and width * height > max_pixels:
                    continue
                row = measure(width, height, device, dtype, model=model, authors=authors)
                rows.append(row)
                if progress:
                    print(report_sizes([row], header=not rows[:-1]), file=sys.stderr, flush=True)
    return rows


def report_sizes(rows: Sequence[dict], header: bool = True) -> str:
    """A Markdown table of the rows, then the growth exponents per device and dtype."""
    columns = ["device", "dtype", "image", "grid", "patches", "forward s", "Grad-ECLIP s", "ratio", "before MB",
               "forward peak MB", "Grad-ECLIP peak MB"]
    authors = any("authors_peak_mb" in r for r in rows)
    if authors:
        columns += ["authors' s", "authors' / ours", "ours + MB", "authors' + MB", "largest difference"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] if header else []
    for r in rows:
        if "error" in r:
            empty = " |" * (len(columns) - 4)
            lines.append(f"| {r['device']} | {r['dtype']} | {r['width']} x {r['height']} |{empty} {r['error']} |")
            continue
        lines.append(f"| {r['device']} | {r['dtype']} | {r['width']} x {r['height']} | {r['grid'][0]} x {r['grid'][1]} "
                     f"| {r['patches']:,} | {r['forward_s']:.2f} | {r['grad_eclip_s']:.2f} | "
                     f"{r['grad_eclip_s'] / r['forward_s']:.2f} | {r['base_mb']:,.0f} | {r['forward_peak_mb']:,.0f} | "
                     f"{r['grad_eclip_peak_mb']:,.0f} |" + (_authors_cells(r) if authors else ""))
    return "\n".join(lines)


def _authors_cells(r: dict) -> str:
    """Their seconds, the ratio to ours, the memory each map adds above what the process held before it, and the
    largest difference between the two maps (of the largest value)."""
    ours = f"{r['grad_eclip_peak_mb'] - r['base_mb']:,.0f}"
    theirs = f"{r['authors_peak_mb'] - r['authors_base_mb']:,.0f}"
    if "authors_error" in r:
        return f" fails | | {ours} | {theirs} | {r['authors_error']} |"
    return (f" {r['authors_s']:.2f} | {r['authors_s'] / r['grad_eclip_s']:.2f} | {ours} | {theirs} | "
            f"{r['authors_max_diff']:.1e} of {r['authors_max']:.1e} |")


def report_growth(rows: Sequence[dict]) -> str:
    """The growth exponents of time and memory in the number of patches, per device and dtype."""
    out = []
    for device, dtype in dict.fromkeys((r["device"], r["dtype"]) for r in rows):
        mine = [r for r in rows if (r["device"], r["dtype"]) == (device, dtype)]
        out.append(f"{device} {dtype}: time ~ patches^{growth_exponent(mine, 'grad_eclip_s'):.2f} "
                   f"(forward ^{growth_exponent(mine, 'forward_s'):.2f}), memory above the model ~ "
                   f"patches^{growth_exponent(mine, 'grad_eclip_peak_mb'):.2f}, from 1 000 patches up")
    return "\n".join(out)
