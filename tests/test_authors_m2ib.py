"""The M2IB authors' own IBAInterpreter (github.com/YingWANGG/M2IB), read from a clone, against `m2ib`.

Runs where the clone is at hand (``GRADECLIP_M2IB_CODE`` = a clone of github.com/YingWANGG/M2IB); CI has
none and checks the clear error a user gets without it. Without noise both fits are deterministic and the
maps must be equal; with noise (theirs drawn per sample from the global generator, ours from a seeded one)
our map must correlate with theirs as well as two seeded runs of theirs correlate with each other."""

import os

import numpy as np
import pytest
import torch
from scipy import stats

import gradeclip_lib as gl
from gradeclip_lib.authors_m2ib import authors_interpreter, authors_m2ib_map
from gradeclip_lib.images import prepare
from gradeclip_lib.synthetic.scenes import make_scenes

CLONE = os.environ.get("GRADECLIP_M2IB_CODE")
needs_clone = pytest.mark.skipif(not CLONE, reason="the authors' clone (GRADECLIP_M2IB_CODE) is not at hand")


def test_a_missing_clone_says_where_to_get_it(tmp_path):
    with pytest.raises(gl.GradEclipError, match="git clone https://github.com/YingWANGG/M2IB"):
        authors_interpreter(tmp_path)


def _cases(n: int = 3):
    clip = gl.load_clip("shapes")  # trained: maps with structure to agree on
    for scene in make_scenes(n, seed=80_000, n_objects=2, size=clip.crop_size):
        pixels = prepare([scene.image], clip.patch_size, clip.mean, clip.std)[0][0]
        phrase = scene.objects[0].phrase
        yield clip, scene.image, pixels.reshape(1, *pixels.shape[-3:]), phrase, clip.tokenize(phrase)


@needs_clone
def test_without_noise_their_map_is_ours(monkeypatch):
    iba, _ = authors_interpreter(CLONE)
    monkeypatch.setattr(iba.InformationBottleneck, "_sample_t", staticmethod(lambda mu, noise_var: mu))
    real_randn = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *a, **k: torch.zeros_like(real_randn(*a, **k)))
    for clip, image, pixels, phrase, ids in _cases():
        ours = gl.explain(clip, image, phrase, method="m2ib").maps[0].flatten()
        theirs = authors_m2ib_map(CLONE, clip, pixels, ids, layer=len(clip.vision_blocks) - 3)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * float(theirs.abs().max()))


@needs_clone
def test_with_noise_ours_agrees_with_theirs_as_their_runs_agree():
    def r(a, b):
        return stats.pearsonr(a.numpy(), b.numpy()).statistic

    for clip, image, pixels, phrase, ids in _cases():
        ours = gl.explain(clip, image, phrase, method="m2ib").maps[0].flatten()
        theirs = [authors_m2ib_map(CLONE, clip, pixels, ids, layer=len(clip.vision_blocks) - 3, seed=k)
                  for k in (1, 2, 3)]
        between_theirs = [r(theirs[i], theirs[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
        assert np.mean([r(ours, t) for t in theirs]) >= min(between_theirs) - 0.005
