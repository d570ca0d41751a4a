"""The explainer core reproduces the previous release's maps and scores on every model family: each entry of
``tests/data/reference_maps.pt`` (written by ``tools/reference_maps.py`` before the core was refactored, on
tiny random models and non-square images) recomputed now, to 1e-5. The M2IB entries were rewritten once, on
purpose, when M2IB began to read the capacity of its last forward as the authors' code does (issue 25)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ["clip_vit", "clip_resnet", "timm_vit", "blip"]


def _tool():
    spec = importlib.util.spec_from_file_location("reference_maps", ROOT / "tools" / "reference_maps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(ROOT / "tests" / "data" / "reference_maps.pt")


@pytest.mark.parametrize("family", FAMILIES)
def test_the_core_reproduces_the_previous_release(family, reference):
    jobs = _tool().entries([family])
    expected = {name for name in reference if name.startswith(family + "/")}
    assert expected and expected <= set(jobs), sorted(expected - set(jobs))
    for name in sorted(expected):
        got = jobs[name]()
        for part, want in reference[name].items():
            message = f"{name} {part}"
            torch.testing.assert_close(got[part], want, atol=1e-5, rtol=1e-5, msg=lambda m, s=message: f"{s}: {m}")
