"""Shared fixtures: tiny random CLIP models with sharp attention, and small test images."""

from __future__ import annotations

import matplotlib

matplotlib.use("agg")  # figures drawn by the tests stay off screen (the notebooks' kernels keep their inline backend)

import numpy as np  # noqa: E402
import open_clip
import pytest
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from PIL import Image

import gradeclip_lib as gl
from gradeclip_lib.exercises.checking import LINE_WIDTH
from gradeclip_lib.memo import ENV as MEMO_ENV


@pytest.fixture(autouse=True)
def _memo_off(monkeypatch):
    """Unit tests compute: the memo `make test` turns on for the notebooks is off (tests/test_memo.py turns it
    on for itself), so that no test reads a result another test stored."""
    monkeypatch.delenv(MEMO_ENV, raising=False)


def make_tiny_clip(
    patch: int = 8,
    image_size: int = 32,
    width: int = 64,
    heads: int = 4,
    vision_layers: int = 3,
    text_layers: int = 3,
    seed: int = 0,
    text_width: int = 32,
    text_heads: int = 4,
) -> gl.Clip:
    """A tiny open_clip CLIP whose random weights are large enough for peaked, head-specific attention
    (default initialisations give nearly uniform attention, which would hide errors)."""
    torch.manual_seed(seed)
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=vision_layers, width=width, head_width=width // heads,
                                 patch_size=patch, image_size=image_size),
        text_cfg=CLIPTextCfg(width=text_width, heads=text_heads, layers=text_layers),
        quick_gelu=True,
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif "in_proj_weight" in name:
                p.normal_(0, 2.0 / p.shape[-1] ** 0.5)
            elif p.ndim >= 2 or name.endswith("bias") or "embedding" in name:
                p.normal_(0, 0.6 / p.shape[-1] ** 0.5 if p.ndim >= 2 else 0.2)
    return gl.Clip(model, open_clip.get_tokenizer("ViT-B-16"), name="tiny")


def make_tiny_resnet_clip(image_size: int = 64, width: int = 8, head_width: int = 64, seed: int = 0) -> gl.Clip:
    """A tiny open_clip CLIP with a ResNet image tower (one bottleneck per stage, attention pool of
    ``width * 32 / head_width`` heads); random weights made large enough for peaked pool attention and
    live residual branches (open_clip zeroes each block's last batch-norm scale)."""
    torch.manual_seed(seed)
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=(1, 1, 1, 1), width=width, head_width=head_width, image_size=image_size),
        text_cfg=CLIPTextCfg(width=32, heads=4, layers=2),
    )
    with torch.no_grad():
        for name, p in model.visual.named_parameters():
            if name.startswith("attnpool") and ("q_proj.weight" in name or "k_proj.weight" in name):
                p.normal_(0, 3.0 / p.shape[-1] ** 0.5)
            elif "bn" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif "bn" in name and name.endswith("bias"):
                p.normal_(0, 0.1)
    return gl.Clip(model, open_clip.get_tokenizer("RN50"), name="tiny-rn")


@pytest.fixture(scope="session")
def tiny() -> gl.Clip:
    return make_tiny_clip()


@pytest.fixture(scope="session")
def tiny_rn() -> gl.Clip:
    return make_tiny_resnet_clip()


def make_tiny_timm_clip(kind: str, image_size: int = 32, width: int = 32, heads: int = 4, layers: int = 3,
                        seed: int = 0) -> gl.Clip:
    """A tiny CLIP with an open_clip timm image tower of ``kind`` ("siglip": a MAP head; "eva": EVA-02's
    rotary class-token ViT) and SigLIP's logit scale and bias; weights large enough for peaked attention
    and live branches (timm starts EVA's head and several projections near zero)."""
    from gradeclip_lib.models.timm_towers import build_timm_tower

    torch.manual_seed(seed)
    model = open_clip.CLIP(embed_dim=width, vision_cfg=CLIPVisionCfg(layers=1, width=8, head_width=8, patch_size=8,
                                                                     image_size=image_size),
                           text_cfg=CLIPTextCfg(width=32, heads=4, layers=2), init_logit_bias=-10.0)
    model.visual = build_timm_tower({"kind": kind, "image_size": image_size, "patch_size": 8, "width": width,
                                     "layers": layers, "heads": heads, "embed_dim": width})
    with torch.no_grad():
        for name, p in model.visual.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif any(k in name for k in ("q_proj.weight", "k_proj.weight", "qkv.weight", "kv.weight", ".q.weight")):
                p.normal_(0, 2.0 / p.shape[-1] ** 0.5)
            elif p.ndim >= 2 or "latent" in name or "token" in name or "pos_embed" in name:
                p.normal_(0, 0.6 / p.shape[-1] ** 0.5 if p.ndim >= 2 else 0.2)
            elif name.endswith("bias"):
                p.normal_(0, 0.2)
    return gl.Clip(model, open_clip.get_tokenizer("ViT-B-16"), name=f"tiny-{kind}")


@pytest.fixture(scope="session")
def tiny_siglip() -> gl.Clip:
    return make_tiny_timm_clip("siglip")


@pytest.fixture(scope="session")
def tiny_eva() -> gl.Clip:
    return make_tiny_timm_clip("eva")


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    # smooth blobs plus noise, so that resizing is not trivial
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(xx / (5 + 3 * c) + c) * np.cos(yy / (7 + c)) for c in range(3)], -1)
    arr = 127 + 90 * base + rng.normal(0, 20, (height, width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype("uint8"))


@pytest.fixture
def images() -> list[Image.Image]:
    return [random_image(40, 56, 1), random_image(40, 56, 2), random_image(33, 70, 3)]


def fails_with(check, *args, hint: str) -> str:
    """The self-check's failure message, which must contain ``hint``."""
    with pytest.raises(AssertionError) as err:
        check(*args)
    assert hint in str(err.value), str(err.value)
    return str(err.value)


def says_correct(capsys, check, *args) -> str:
    """What a passing self-check prints, joined back into one line: it must start with "Correct: " and
    fit the page's code column."""
    check(*args)
    out = capsys.readouterr().out
    assert out.startswith("Correct: "), out
    assert all(len(line) <= LINE_WIDTH for line in out.splitlines()), out
    return " ".join(line.strip() for line in out.splitlines())
