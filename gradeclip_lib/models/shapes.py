"""The ShapesWorld CLIP: an open_clip `CLIP` (ViT image tower with 8-px patches, or a ResNet one; causal
text tower with end-token pooling) whose architecture is data (a config dict saved next to its weights)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import open_clip
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from ..errors import WeightsUnavailableError
from ..samples import DATA_DIR
from ..synthetic.data import MEAN, STD
from ..synthetic.scenes import IMAGE_SIZE
from ..synthetic.tokenizer import WordTokenizer, vocabulary
from .clip import Clip
from .timm_towers import build_timm_tower

SHAPES_DIR = DATA_DIR / "shapes"
SIGLIP_DIR = DATA_DIR / "shapes-siglip"  # a ShapesWorld SigLIP: a timm ViT tower with a MAP head, sigmoid loss
TUNED_DIR = DATA_DIR / "shapes-tuned"  # the same model after Grad-ECLIP-guided fine-tuning (finetune package)
RESNET_DIR = DATA_DIR / "shapes-resnet"  # a ShapesWorld CLIP with a ResNet image tower (the "resnet" preset)


# Architectures as data (widths, depths, image side). All use 8-px patches. "small" and "base" keep the
# book fast on a CPU (64 px is the smallest side at which the five shapes stay distinct); "base-80" and
# "large" (the widths of the first GPU probe) trade CPU time in the book for finer maps.
PRESETS = {
    "small": {"image_size": 64, "vision_width": 128, "vision_layers": 4, "head_width": 32,
              "text_width": 96, "text_layers": 2, "embed_dim": 96},
    "base": {"image_size": 64, "vision_width": 192, "vision_layers": 4, "head_width": 64,
             "text_width": 128, "text_layers": 3, "embed_dim": 128},
    "base-80": {"image_size": 80, "vision_width": 192, "vision_layers": 4, "head_width": 64,
                "text_width": 128, "text_layers": 3, "embed_dim": 128},
    "large": {"image_size": IMAGE_SIZE, "vision_width": 256, "vision_layers": 6, "head_width": 64,
              "text_width": 256, "text_layers": 3, "embed_dim": 256},
    # A ResNet image tower (open_clip's ModifiedResNet, one bottleneck per stage, an attention pool of 16
    # heads): its stride of 32 needs 128-px scenes for a 4 x 4 grid of cells to point with.
    "resnet": {"image_size": 128, "vision_width": 16, "vision_layers": [1, 1, 1, 1], "head_width": 32,
               "text_width": 96, "text_layers": 2, "embed_dim": 96},
    # SigLIP's shape at the small preset's widths: a timm ViT tower without a class token, pooled by an
    # attention-pooling (MAP) head, its features unprojected (so the embedding is the tower's width), trained
    # with the sigmoid loss from SigLIP's initial logit scale (10) and bias (-10). The shipped one starts from
    # the "small" CLIP's image blocks and text tower (shapes_transfer.py): from scratch it did not reach the
    # book's bar in 45 minutes on a CPU (data/results/shapes_siglip_attempts_cpu.json).
    "siglip": {"image_size": 64, "vision_width": 128, "vision_layers": 4, "head_width": 32,
               "text_width": 96, "text_layers": 2, "embed_dim": 128, "timm_kind": "siglip"},
}
DEFAULT_PRESET = "small"


def default_config(preset: str = DEFAULT_PRESET) -> dict:
    """The architecture of a preset as an open_clip-style config dict (saved next to the weights)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    vocab = len(WordTokenizer())  # the words, <pad>, <unk>, <start> and <end>
    if "timm_kind" in p:
        return {
            "embed_dim": p["embed_dim"],
            "vision_cfg": {"timm_kind": p["timm_kind"], "image_size": p["image_size"], "width": p["vision_width"],
                           "layers": p["vision_layers"], "heads": p["vision_width"] // p["head_width"],
                           "patch_size": 8},
            "text_cfg": {"context_length": 32, "vocab_size": vocab, "width": p["text_width"], "heads": 2,
                         "layers": p["text_layers"]},
            "init_logit_scale": math.log(10), "init_logit_bias": -10.0,  # SigLIP's starting point
            "vocabulary": vocabulary(),
        }
    return {
        "embed_dim": p["embed_dim"],
        "vision_cfg": {"image_size": p["image_size"], "width": p["vision_width"], "layers": p["vision_layers"],
                       "head_width": p["head_width"],
                       **({} if isinstance(p["vision_layers"], list) else {"patch_size": 8})},
        "text_cfg": {"context_length": 32, "vocab_size": vocab, "width": p["text_width"], "heads": 2,
                     "layers": p["text_layers"]},
        "quick_gelu": False,
        "vocabulary": vocabulary(),
    }


def build_model(config: dict | None = None) -> open_clip.CLIP:
    """A randomly initialised ShapesWorld CLIP from a config dict."""
    cfg = config or default_config()
    vision = cfg["vision_cfg"]
    timm = "timm_kind" in vision
    if timm:  # open_clip builds timm towers by model name only: a stand-in tower, replaced below
        stand_in = CLIPVisionCfg(image_size=vision["image_size"], width=8, layers=1, head_width=8, patch_size=8)
    model = open_clip.CLIP(
        embed_dim=cfg["embed_dim"],
        vision_cfg=stand_in if timm else CLIPVisionCfg(**vision),
        text_cfg=CLIPTextCfg(**cfg["text_cfg"]),
        quick_gelu=cfg.get("quick_gelu", False),
        **({"init_logit_scale": cfg["init_logit_scale"]} if "init_logit_scale" in cfg else {}),
        init_logit_bias=cfg.get("init_logit_bias"),
    )
    if timm:
        model.visual = build_timm_tower({**vision, "kind": vision["timm_kind"], "embed_dim": cfg["embed_dim"]})
    return model


def model_name(config: dict) -> str:
    """The name a ShapesWorld model of this architecture goes by ("shapes", "shapes-resnet", "shapes-siglip")."""
    vision = config["vision_cfg"]
    if "timm_kind" in vision:
        return f"shapes-{vision['timm_kind']}"
    return "shapes-resnet" if isinstance(vision["layers"], list) else "shapes"


def wrap(model: open_clip.CLIP, config: dict | None = None, pretrained: str | None = None) -> Clip:
    """A `Clip` around a ShapesWorld model, with its word tokenizer and preprocessing."""
    cfg = config or default_config()
    tokenizer = WordTokenizer(cfg.get("vocabulary"), context_length=cfg["text_cfg"]["context_length"])
    size = cfg["vision_cfg"]["image_size"]
    return Clip(model, tokenizer, preprocess_cfg={"size": size, "mean": MEAN, "std": STD},
                name=model_name(cfg), pretrained=pretrained)


def save(model: open_clip.CLIP, config: dict, folder: str | Path = SHAPES_DIR) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (fp16, a few MB) into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    return folder / "model.safetensors"


def load_shapes_clip(folder: str | Path = SHAPES_DIR, device: str | torch.device = "cpu",
                     dtype: torch.dtype | None = None) -> Clip:
    """The trained ShapesWorld model shipped in ``data/shapes`` (or another folder from ``train``)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    weights, config_file = folder / "model.safetensors", folder / "config.json"
    if not weights.is_file() or not config_file.is_file():
        raise WeightsUnavailableError(
            f"no ShapesWorld model in {folder} (needs model.safetensors and config.json); train one with "
            f"`python -m gradeclip_lib shapes train --out {folder}` (minutes on a GPU)."
        )
    config = json.loads(config_file.read_text())
    model = build_model(config)
    state = {k: v.float() for k, v in load_file(weights).items()}
    model.load_state_dict(state)
    model.to(device=device, dtype=dtype)
    return wrap(model, config, pretrained=str(folder.name))
