"""Weights for a lab without internet: `pack-weights` copies a model's weights from this machine's cache into a
folder, and with ``GRADECLIP_WEIGHTS`` pointing at that folder `load_clip` reads them offline. Tested with a fake
weights file of a tiny architecture, in a fake Hugging Face cache, with the hub offline."""

import open_clip
import open_clip.factory
import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import save_file

import gradeclip_lib as gl
from gradeclip_lib.cli import main
from gradeclip_lib.models.pack import pack_weights

TINY = {"embed_dim": 32, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}}
REPO = "models--fake--tiny-clip"


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A tiny architecture with a pretrained tag 'course' whose weights sit in this machine's (fake) hub cache."""
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "Tiny-Course", TINY)
    real_cfg = open_clip.get_pretrained_cfg
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda name, tag: {"hf_hub": "fake/tiny-clip/"}
                        if (name, tag) == ("Tiny-Course", "course") else real_cfg(name, tag))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # no network: what is not packed cannot load
    cache = tmp_path / "machine-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("GRADECLIP_WEIGHTS", raising=False)
    torch.manual_seed(7)
    weights = open_clip.create_model("Tiny-Course").state_dict()
    snapshot = cache / REPO / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (cache / REPO / "refs").mkdir()
    (cache / REPO / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in weights.items()}, snapshot / "open_clip_model.safetensors")
    return cache, weights


def same_weights(clip, weights) -> bool:
    return all(torch.equal(clip.model.state_dict()[k], v) for k, v in weights.items())


def test_packed_weights_load_offline_on_a_machine_without_them(lab, tmp_path, monkeypatch):
    cache, weights = lab
    assert same_weights(gl.load_clip("Tiny-Course", "course"), weights)  # the teacher's machine has them
    files = pack_weights(["Tiny-Course:course"], tmp_path / "packed")
    assert [f.name for f in files] == ["open_clip_model.safetensors"]
    assert str(files[0]).startswith(str(tmp_path / "packed"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "student-cache"))  # a student's machine
    with pytest.raises(gl.WeightsUnavailableError, match="pack-weights"):
        gl.load_clip("Tiny-Course", "course")
    monkeypatch.setenv("GRADECLIP_WEIGHTS", str(tmp_path / "packed"))
    clip = gl.load_clip("Tiny-Course", "course")
    assert same_weights(clip, weights) and clip.pretrained == "course"


def test_the_command_says_where_the_weights_went_and_fails_clearly_without_them(lab, tmp_path, capsys):
    assert main(["pack-weights", str(tmp_path / "out"), "--model", "Tiny-Course:course"]) == 0
    assert "GRADECLIP_WEIGHTS" in capsys.readouterr().out
    assert (tmp_path / "out" / REPO / "refs" / "main").is_file()
    assert main(["pack-weights", str(tmp_path / "out2"), "--model", "ViT-B-32:no-such-tag"]) == 2
    assert "no such pretrained weights" in capsys.readouterr().err
    assert main(["pack-weights", str(tmp_path / "out3"), "--model", "ViT-B-32:openai"]) == 2  # offline, not cached
    assert "no network" in capsys.readouterr().err
