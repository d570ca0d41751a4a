"""`load_clip`: an open_clip model name (+ tag, file or nothing) to a ready `Clip`, failing fast offline."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import urllib.parse
from pathlib import Path

import open_clip
import torch

from ..errors import WeightsUnavailableError
from .clip import Clip

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


def as_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A torch dtype from a dtype or one of 'fp32', 'fp16', 'bf16'."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


def split_name(name: str, pretrained: str | None) -> tuple[str, str | None]:
    """'ViT-B-16-quickgelu:openai' -> ('ViT-B-16-quickgelu', 'openai'). A tag in the name wins over
    ``pretrained``, except ``pretrained=None``, which always means random weights."""
    if ":" in name and not os.path.exists(name):
        base, tag = name.split(":", 1)
        return base, None if pretrained is None else tag
    return name, pretrained


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers within seconds (open_clip itself retries for about a minute)."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def cached_weights(cfg: dict, cache_dir: str | None = None) -> str | None:
    """The local path of a pretrained tag's weights if they were downloaded before, else None."""
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import hf_hub_download

        model_id, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith(".bin"):
            names.insert(0, filename[: -len(".bin")] + ".safetensors")
        for fname in names:
            try:
                return hf_hub_download(model_id, fname, cache_dir=cache_dir, local_files_only=True)
            except Exception:  # any miss means "not cached"
                continue
    if cfg.get("url"):
        root = cache_dir or os.path.expanduser("~/.cache/clip")
        path = os.path.join(root, os.path.basename(urllib.parse.urlparse(cfg["url"]).path))
        if os.path.isfile(path):
            return path
    return None


def _offline_message(name: str, tag: str, cfg: dict) -> str:
    where = cfg.get("hf_hub") or cfg.get("url") or "its source"
    return (
        f"no weights for {name}:{tag} on this machine and no network to download them from {where}.\n"
        f"  - with internet, run once: python -c \"import gradeclip_lib as gl; gl.load_clip('{name}', '{tag}')\"\n"
        f"    (open_clip caches them; copy that cache to offline machines), or\n"
        f"  - pass a local file: gl.load_clip('{name}', pretrained='/path/to/weights.safetensors'), or\n"
        f"  - use random weights on purpose: gl.load_clip('{name}', pretrained=None) (maps mean nothing)."
    )


@contextlib.contextmanager
def _quiet_root_logger():
    """Silence warnings sent to the root logger (open_clip's "No pretrained weights loaded") for a while."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def load_clip(
    name: str,
    pretrained: str | os.PathLike | None = "openai",
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
) -> Clip:
    """Build a `Clip` from an open_clip model name and a pretrained tag, a weights file, or None.

    ``pretrained=None`` is the explicit choice of random weights (drawn reproducibly from ``seed``,
    without touching the global random state); a tag whose weights are neither
    cached nor downloadable raises `WeightsUnavailableError` within seconds, never random weights.
    ``name`` may carry the tag, as in ``"ViT-B-16-quickgelu:openai"``. ``"shapes"`` loads the
    ShapesWorld model trained by ``python -m gradeclip_lib.synthetic train``, ``"shapes-tuned"`` the same model
    after Grad-ECLIP-guided fine-tuning (``python -m gradeclip_lib.synthetic finetune``), ``"shapes-resnet"`` a
    ShapesWorld CLIP with a ResNet image tower (``train --preset resnet``).
    """
    if name in ("shapes", "shapes-tuned", "shapes-resnet"):  # ShapesWorld models in data/ (or a folder given)
        from ..synthetic import model as shapes

        shipped = {"shapes": shapes.SHAPES_DIR, "shapes-tuned": shapes.TUNED_DIR, "shapes-resnet": shapes.RESNET_DIR}
        if pretrained is None and name == "shapes-tuned":
            raise ValueError("'shapes-tuned' is the fine-tuned ShapesWorld model; for random weights load 'shapes' "
                             "with pretrained=None")
        if pretrained is None:
            config = shapes.default_config("resnet" if name == "shapes-resnet" else shapes.DEFAULT_PRESET)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return shapes.wrap(shapes.build_model(config).to(device=device, dtype=as_dtype(dtype)), config)
        folder = shipped[name] if pretrained == "openai" else pretrained
        if name != "shapes" and not (Path(folder) / "model.safetensors").is_file():
            how = "synthetic finetune" if name == "shapes-tuned" else "synthetic train --preset resnet"
            raise WeightsUnavailableError(f"no {name} model in {folder}; make it with `python -m "
                                          f"gradeclip_lib.{how} --out {folder}`.")
        return shapes.load_shapes_clip(folder, device=device, dtype=as_dtype(dtype))
    name, pretrained = split_name(name, None if pretrained is None else os.fspath(pretrained))
    if name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {name!r}; see open_clip.list_models() for the names.")
    preprocess: dict = {}
    if pretrained is None:  # asked for: the Clip's repr says "random weights", open_clip's warning would repeat it
        with torch.random.fork_rng(devices=[]), _quiet_root_logger():
            torch.manual_seed(seed)
            model = open_clip.create_model(name, pretrained=None, cache_dir=cache_dir)
    elif os.path.isfile(pretrained):
        model = open_clip.create_model(name, pretrained=pretrained, cache_dir=cache_dir)
    else:
        if pretrained.endswith((".pt", ".bin", ".safetensors", ".pth")) or os.sep in pretrained:
            raise WeightsUnavailableError(f"no weights file at {pretrained!r}.")
        cfg = open_clip.get_pretrained_cfg(name, pretrained)
        if not cfg:
            tags = open_clip.list_pretrained_tags_by_model(name)
            raise WeightsUnavailableError(
                f"{name} has no pretrained tag {pretrained!r}; known tags: {', '.join(tags) or 'none'}."
            )
        preprocess = {k: cfg[k] for k in _PREPROCESS_KEYS if k in cfg}
        local = cached_weights(cfg, cache_dir)
        if local is not None:
            model = open_clip.create_model(name, pretrained=local, cache_dir=cache_dir)
        elif hub_reachable():
            model = open_clip.create_model(name, pretrained=pretrained, cache_dir=cache_dir)
        else:
            raise WeightsUnavailableError(_offline_message(name, pretrained, cfg))
    model.to(device=device, dtype=as_dtype(dtype))
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    cfg.update(preprocess)
    label = Path(pretrained).name if pretrained and os.path.isfile(pretrained) else pretrained
    return Clip(model, open_clip.get_tokenizer(name), preprocess_cfg=cfg, name=name, pretrained=label)
