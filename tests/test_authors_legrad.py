"""LeGrad against its authors' package (``legrad-torch`` 1.1, installed by the Makefile with --no-deps), on
the same weights: square inputs at the model's size and twice it, several prompts at once."""

import importlib
import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F

import gradeclip_lib as gl
from gradeclip_lib.authors_legrad import authors_legrad_map
from gradeclip_lib.explanation import minmax
from gradeclip_lib.images import prepare
from gradeclip_lib.synthetic.scenes import make_scenes

needs_package = pytest.mark.skipif(importlib.util.find_spec("legrad") is None,
                                   reason="legrad-torch is not installed (pip install --no-deps legrad-torch==1.1)")


def legrad_utils():
    return importlib.import_module("legrad.utils")


def plain_bicubic(pos, new_size, num_prefix_tokens=1, **_):
    """timm's resample_abs_pos_embed [1, 1 + n, D] -> [1, 1 + h w, D], without its antialiasing."""
    prefix, grid = pos[:, :num_prefix_tokens], pos[:, num_prefix_tokens:]
    side = int(grid.shape[1] ** 0.5)
    grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_size), mode="bicubic", align_corners=False)
    return torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])], dim=1)


def ours_in_pixels(clip, image, texts, layer_index):
    """Our grid maps upsampled as LeGrad upsamples its own (bilinear, by the patch size), then min-maxed:
    min-max commutes with that linear upsampling up to the new extremes, which the second min-max sets."""
    maps = gl.explain(clip, [image] * len(texts), texts, method="legrad", layer_index=layer_index).maps
    return minmax(F.interpolate(maps[:, None], scale_factor=clip.patch_size, mode="bilinear")[:, 0])


@needs_package
@pytest.mark.parametrize("scale, layer_index", [(1, -2), (2, -2), (1, 0)])
def test_our_legrad_is_the_authors(tiny, monkeypatch, scale, layer_index):
    side = 32 * scale  # the tiny model's size (a 4 x 4 grid), and twice it (its positions resampled)
    image = make_scenes(1, seed=5, n_objects=2, size=side)[0].image
    texts = ["a red circle", "a photo of a blue star"]
    pixels = prepare([image], tiny.patch_size, tiny.mean, tiny.std)[0][0][None]
    theirs = authors_legrad_map(tiny, pixels, tiny.encode_text(texts), layer_index)
    ours = ours_in_pixels(tiny, image, texts, layer_index)
    assert ours.shape == theirs.shape == (2, side, side)
    if scale == 1:
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    else:  # their positions are resampled with timm's antialiased bicubic (a = -0.5), ours with the Grad-ECLIP
        # authors' plain bicubic (a = -0.75): close, and equal once they resample as we do
        r = [float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]) for a, b in zip(ours, theirs)]
        assert min(r) >= 0.999, r
        monkeypatch.setattr(legrad_utils(), "resample_abs_pos_embed", plain_bicubic)
        same_positions = authors_legrad_map(tiny, pixels, tiny.encode_text(texts), layer_index)
        torch.testing.assert_close(ours, same_positions, rtol=1e-4, atol=1e-4)


def test_without_the_package_the_error_says_how_to_install_it(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "legrad", None)  # as if not installed
    with pytest.raises(gl.GradEclipError, match="pip install --no-deps legrad-torch"):
        authors_legrad_map(tiny, torch.zeros(1, 3, 32, 32), torch.ones(1, 32))
