"""The authors' own generate_emap.py, read from a clone of their repository, against paper mode.

The comparison runs where their code is at hand (``GRADECLIP_AUTHORS_CODE`` = a clone of
github.com/Cyang-Zhao/Grad-Eclip, and ``pip install --no-deps openai-clip==1.0.1``); CI has neither, and
checks the clear errors a user gets without them."""

import importlib.util
import os

import pytest
import torch
from conftest import make_tiny_clip, random_image

import gradeclip_lib as gl
from gradeclip_lib.authors_code import authors_functions, authors_map, openai_model
from gradeclip_lib.images import prepare

CLONE = os.environ.get("GRADECLIP_AUTHORS_CODE")


def test_a_missing_clone_says_where_to_get_it(tmp_path):
    with pytest.raises(gl.GradEclipError, match="git clone https://github.com/Cyang-Zhao/Grad-Eclip"):
        authors_functions(tmp_path, torch.nn.Linear(1, 1))


def test_another_file_is_refused(tmp_path):
    (tmp_path / "generate_emap.py").write_text("def grad_eclip():\n    pass\n")
    with pytest.raises(gl.GradEclipError, match="no function attention_layer, clip_encode_dense"):
        authors_functions(tmp_path, torch.nn.Linear(1, 1))


@pytest.mark.skipif(not CLONE or importlib.util.find_spec("clip") is None,
                    reason="the authors' clone (GRADECLIP_AUTHORS_CODE) and openai-clip are not installed")
@pytest.mark.parametrize("size", [(32, 32), (40, 56)])
def test_their_code_gives_paper_modes_map(size):
    # OpenAI's class infers 1 head per 64 channels from the weights: widths of 64, one head each
    clip = make_tiny_clip(width=64, heads=1, text_width=64, text_heads=1)
    functions = authors_functions(CLONE, openai_model(clip.model))
    photo = random_image(*size, 3)
    text = torch.nn.functional.normalize(torch.randn(clip.embed_dim, generator=torch.Generator().manual_seed(2)), dim=0)
    pixels, _ = prepare([photo], clip.patch_size, clip.mean, clip.std)
    theirs, cosine = authors_map(functions, pixels[0][None], text)
    ours = gl.explain(clip, photo, text[None], mode="paper")
    assert theirs.shape == ours.maps.shape[-2:] == (size[0] // 8, size[1] // 8)
    assert cosine == pytest.approx(float(ours.scores[0]), abs=1e-6)
    assert theirs.abs().max() > 0
    torch.testing.assert_close(theirs, ours.maps[0], atol=1e-6, rtol=1e-5)
