"""The GPU check in tools/: it must pass a correct device and flag a broken one (tested on the CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from conftest import make_tiny_clip

from gradeclip_lib.models.loading import as_dtype

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_device_check_passes_every_method_in_bf16_on_the_cpu(images):
    check = load_tool("device_check")

    def clip_for(device, dtype):
        return make_tiny_clip(seed=4).to(device, as_dtype(dtype) if dtype else None)

    texts = ["a red circle", "there is a white square"]
    rows = check.check_model("tiny", clip_for, [images[0], images[2]], texts, "cpu")
    assert {r["method"] for r in rows if r["kind"] == "image"} >= {"grad_eclip", "rise", "m2ib", "game"}
    assert [r for r in rows if not check.passed(r)] == []
    assert {tuple(g) for g in rows[0]["grids"]} == {(5, 7), (4, 9)}  # two non-square token grids at once


def test_device_check_flags_drift_errors_and_wrong_shapes():
    check = load_tool("device_check")
    reference = [torch.arange(12.0).reshape(3, 4)]
    good = check._compare(reference, [reference[0] * 2 + 1])
    assert good == {"shapes_match": True, "finite": True, "min_corr": 1.0}
    row = {"method": "grad_eclip", "dtype": "fp32", **good}
    assert check.passed(row)
    noisy = reference[0] + torch.randn(3, 4, generator=torch.Generator().manual_seed(0)) * 4
    assert not check.passed({**row, **check._compare(reference, [noisy])})
    assert not check.passed({**row, **check._compare(reference, [reference[0].T])})  # another grid
    assert not check.passed({**row, **check._compare(reference, [reference[0] / 0])})  # inf and nan
    assert not check.passed({"method": "rise", "dtype": "bf16", "error": "RuntimeError: no kernel"})
