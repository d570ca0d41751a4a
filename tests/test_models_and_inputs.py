"""Loading models, preparing inputs, and every error path a user can hit."""

from __future__ import annotations

import time

import open_clip
import pytest
import torch
from PIL import Image

import gradeclip_lib as gl
from gradeclip_lib.images import keep_size_shape
from gradeclip_lib.models import loading
from gradeclip_lib.models.towers import positional_embedding, run_blocks, vision_embedding, vision_tokens


def test_random_weights_only_when_asked():
    clip = gl.load_clip("ViT-B-32-quickgelu", pretrained=None)
    assert clip.pretrained is None and "random weights" in repr(clip)
    assert clip.patch_size == 32
    again = gl.load_clip("ViT-B-32-quickgelu:openai", pretrained=None)
    assert again.pretrained is None
    torch.testing.assert_close(again.visual.proj, clip.visual.proj)  # same seed, same weights
    other = gl.load_clip("ViT-B-32-quickgelu", pretrained=None, seed=1)
    assert not torch.allclose(other.visual.proj, clip.visual.proj)


def test_offline_without_cache_fails_fast_and_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(gl.WeightsUnavailableError) as err:
        gl.load_clip("ViT-B-16-quickgelu:openai", cache_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "pretrained=None" in message and "/path/to/weights" in message


def test_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(gl.WeightsUnavailableError, match="no network"):
        gl.load_clip("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path))


def test_unknown_tag_name_and_file():
    with pytest.raises(gl.WeightsUnavailableError, match="known tags"):
        gl.load_clip("ViT-B-16-quickgelu", "no-such-tag")
    with pytest.raises(ValueError, match="unknown open_clip model"):
        gl.load_clip("ViT-Z-99", None)
    with pytest.raises(gl.WeightsUnavailableError, match="no weights file"):
        gl.load_clip("ViT-B-16-quickgelu", "/nowhere/weights.safetensors")


def test_local_weights_file_is_loaded(tmp_path):
    source = gl.load_clip("ViT-B-32-quickgelu", pretrained=None)
    path = tmp_path / "w.pt"
    torch.save(source.model.state_dict(), path)
    clip = gl.load_clip("ViT-B-32-quickgelu", pretrained=str(path))
    assert clip.pretrained == "w.pt"
    torch.testing.assert_close(clip.visual.proj, source.visual.proj)


def test_cached_weights_are_found_offline(monkeypatch, tmp_path):
    source = gl.load_clip("ViT-B-32-quickgelu", pretrained=None)
    path = tmp_path / "cached.pt"
    torch.save(source.model.state_dict(), path)
    monkeypatch.setattr(loading, "cached_weights", lambda cfg, cache_dir=None: str(path))
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: pytest.fail("network asked"))
    clip = gl.load_clip("ViT-B-32-quickgelu", "openai")
    torch.testing.assert_close(clip.visual.proj, source.visual.proj)


def test_an_image_tower_of_another_kind_is_refused_naming_the_supported_ones():
    model = torch.nn.Module()
    model.visual = torch.nn.Conv2d(3, 8, 4)
    with pytest.raises(gl.UnsupportedModelError, match="VisionTransformer.*ModifiedResNet"):
        gl.Clip(model, open_clip.get_tokenizer("RN50"))


def test_wrapping_a_user_model_freezes_it(tiny):
    assert not any(p.requires_grad for p in tiny.model.parameters())
    assert not tiny.model.training


def test_unreadable_missing_and_tiny_images(tiny, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(gl.ImageError, match="could not read"):
        gl.explain(tiny, str(bad), "a cat")
    with pytest.raises(gl.ImageError, match="no image at"):
        gl.explain(tiny, tmp_path / "missing.png", "a cat")
    small = Image.new("RGB", (5, 40))
    for preprocess in ("keep", "crop"):
        with pytest.raises(gl.ImageError, match="smaller than one 8-px patch"):
            gl.explain(tiny, small, "a cat", preprocess=preprocess)
    with pytest.raises(gl.ImageError, match="does not tile"):
        gl.explain(tiny, torch.zeros(3, 30, 32), "a cat")


def test_image_from_path_equals_pil(tiny, images, tmp_path):
    path = tmp_path / "img.png"
    images[2].save(path)
    a = gl.explain(tiny, str(path), "a cat").maps
    b = gl.explain(tiny, images[2], "a cat").maps
    torch.testing.assert_close(a, b)


def test_text_over_context_is_refused(tiny, images):
    long_text = " ".join(["word"] * 80)
    with pytest.raises(gl.TextTooLongError, match="77"):
        gl.explain(tiny, images[0], long_text)
    with pytest.raises(gl.TextTooLongError):
        gl.explain_text(tiny, images[0], long_text)


@pytest.mark.parametrize(("h", "w", "expected"), [(40, 56, (40, 56)), (33, 70, (32, 72)), (12, 11, (16, 8))])
def test_keep_size_rounds_to_nearest_patch_multiple(h, w, expected):
    assert keep_size_shape(h, w, 8) == expected


def test_positional_embedding_interpolation(tiny):
    pos = tiny.visual.positional_embedding
    assert positional_embedding(tiny.visual, (4, 4)) is pos  # training grid: untouched
    resized = positional_embedding(tiny.visual, (5, 7))
    assert resized.shape == (1 + 35, pos.shape[1])
    torch.testing.assert_close(resized[0], pos[0])


def test_composed_vision_forward_is_the_models_forward(tiny, images):
    from gradeclip_lib.models.towers import memory_linear_attention

    pixels = tiny.crop(images)
    with torch.no_grad():
        ours = vision_embedding(tiny.visual, run_blocks(tiny.vision_blocks, vision_tokens(tiny.visual, pixels)))
        with memory_linear_attention():  # the same attention kernels as run_blocks
            theirs = tiny.model.encode_image(pixels)
        fast_path = tiny.model.encode_image(pixels)  # nn.MultiheadAttention's own inference kernel
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours, fast_path, rtol=1e-5, atol=1e-5)  # another kernel: float rounding only


def test_dtype_names():
    assert loading.as_dtype("bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        loading.as_dtype("fp8")


def test_deep_and_transparent_images_read_as_a_viewer_shows_them(tmp_path):
    import numpy as np
    from PIL import Image

    from gradeclip_lib.images import load_image

    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64 491
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")  # PIL reads it as 16-bit grey
    assert np.asarray(Image.open(path).convert("RGB")).mean() > 250  # what PIL alone would give
    grey = np.asarray(load_image(path))[..., 0].astype(float)
    np.testing.assert_allclose(grey, np.rint(ramp.astype(float) * 255 / 65535), atol=0.5)
    assert grey.mean() == pytest.approx(ramp.mean() * 255 / 65535, abs=1)

    floats = Image.fromarray(np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64), mode="F")
    assert np.asarray(load_image(floats))[-1, -1, 0] == 255 and np.asarray(load_image(floats))[0, 0, 0] == 0

    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red stored everywhere, visible only where alpha is set
    rgba[:4, :, 3] = 255
    rgb = np.asarray(load_image(Image.fromarray(rgba, mode="RGBA")))
    assert (rgb[:4] == [200, 0, 0]).all() and (rgb[4:] == 255).all()  # transparent shows as white


def test_shapes_words_outside_the_vocabulary_are_refused():
    from gradeclip_lib.synthetic import WordTokenizer

    tokenizer = WordTokenizer()
    with pytest.raises(gl.UnknownWordError, match="'elephant'.*knows only these words"):
        tokenizer("a purple elephant")
    assert tokenizer("a purple star").shape == (1, 32)
    lenient = WordTokenizer(unknown="unk")
    assert lenient.encode("a purple elephant")[-1] == 1  # <unk>
    clip = gl.load_clip("shapes")
    with pytest.raises(gl.UnknownWordError):
        gl.explain(clip, gl.synthetic.make_scenes(1, size=64)[0].image, "a purple elephant")


def test_a_photo_is_read_upright_whatever_its_exif_orientation(tmp_path):
    import numpy as np
    from PIL import Image

    from gradeclip_lib.images import load_image

    pixels = np.zeros((30, 60, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # a white band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "portrait.jpg"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)
    assert Image.open(path).size == (60, 30)  # PIL alone: landscape, as stored
    shown = np.asarray(load_image(path))
    assert shown.shape[:2] == (60, 30)  # upright: portrait
    assert shown[:10].mean() > 200 and shown[20:].mean() < 50  # the band is now on top
