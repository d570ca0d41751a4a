"""`load_clip`: an open_clip model name (+ tag, file or nothing) to a ready `Clip`, failing fast offline."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import urllib.parse
from pathlib import Path

import open_clip
import torch

from ..errors import TokenizerUnavailableError, WeightsUnavailableError
from . import shapes
from .clip import Clip
from .names import ShippedModel, how_to_make, shipped

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
WEIGHTS_ENV = "GRADECLIP_WEIGHTS"  # a folder of weights packed for machines without internet (models/pack.py)


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


class MissingTokenizer:
    """Stands for a tokenizer that could not be loaded: the model works, a text given as a string raises
    `TokenizerUnavailableError` saying what to do (text embeddings need no tokenizer)."""

    def __init__(self, name: str, source: str) -> None:
        self.name, self.source = name, source

    def __call__(self, texts, *args, **kwargs):
        raise TokenizerUnavailableError(
            f"the tokenizer of {self.name} comes from the Hugging Face hub ({self.source}) and is not on this "
            f"machine, and there is no network to download it.\n"
            f"  - with internet, run once: python -c \"import open_clip; open_clip.get_tokenizer('{self.name}')\"\n"
            f"    (it is cached for later), or\n"
            f"  - explain against text embeddings [T, E] instead of strings (computed where the tokenizer is).")

    def __repr__(self) -> str:
        return f"MissingTokenizer({self.name!r}, {self.source!r})"


def hub_tokenizer(name: str) -> str | None:
    """The Hugging Face repository a model's tokenizer comes from (SigLIP's), None for open_clip's own."""
    cfg = open_clip.get_model_config(name) or {}
    return cfg.get("text_cfg", {}).get("hf_tokenizer_name") or None


def tokenizer_for(name: str):
    """open_clip's tokenizer of ``name``, or a `MissingTokenizer` within seconds when it lives on the hub,
    is not cached and the hub does not answer (open_clip would retry for about a minute, then fail)."""
    source = hub_tokenizer(name)
    if source is not None:
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(source, "tokenizer_config.json"), str) and not hub_reachable():
            return MissingTokenizer(name, source)
    return open_clip.get_tokenizer(name)


def _offline_message(name: str, tag: str, cfg: dict) -> str:
    where = cfg.get("hf_hub") or cfg.get("url") or "its source"
    return (
        f"no weights for {name}:{tag} on this machine and no network to download them from {where}.\n"
        f"  - with internet, run once: python -c \"import gradeclip_lib as gl; gl.load_clip('{name}', '{tag}')\"\n"
        f"    (open_clip caches them), or, for a lab without internet, pack them where there is internet:\n"
        f"    python -m gradeclip_lib pack-weights FOLDER --model {name}:{tag}, copy FOLDER over and set\n"
        f"    {WEIGHTS_ENV}=FOLDER, or\n"
        f"  - pass a local file: gl.load_clip('{name}', pretrained='/path/to/weights.safetensors'), or\n"
        f"  - use random weights on purpose: gl.load_clip('{name}', pretrained=None) (maps mean nothing)."
    )


def _default_tag(name: str) -> str:
    """The tag that ``pretrained=True`` means: the one in the name, else "openai" (the book's weights)."""
    base = name.split(":", 1)[0]
    if ":" in name or base not in open_clip.list_models():
        return "openai"  # split_name keeps the name's own tag; an unknown name is refused below
    tags = open_clip.list_pretrained_tags_by_model(base)
    if "openai" in tags:
        return "openai"
    raise WeightsUnavailableError(f"{base} has no 'openai' weights: name a tag, e.g. pretrained={tags[0]!r} "
                                  f"(known tags: {', '.join(tags)}), or pretrained=None for random weights."
                                  if tags else f"{base} has no pretrained weights in open_clip: pass a weights file, "
                                  "or pretrained=None for random weights.")


def _load_shipped(name: str, entry: ShippedModel, pretrained, device, dtype, seed: int) -> Clip:
    """A ShapesWorld CLIP shipped in ``data/`` (or trained into the folder ``pretrained``), or its architecture
    with random weights (``pretrained=None``: the shipped config, else the table's preset)."""
    folder = entry.folder
    if pretrained is None:
        saved = folder / "config.json"
        config = json.loads(saved.read_text()) if saved.is_file() else shapes.default_config(entry.preset)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return shapes.wrap(shapes.build_model(config).to(device=device, dtype=dtype), config)
    if pretrained not in (True, "openai"):
        folder = Path(pretrained)
    if not (folder / "model.safetensors").is_file():
        raise WeightsUnavailableError(f"no {name} model in {folder}; make it with `{how_to_make(name, folder)}`.")
    return shapes.load_shapes_clip(folder, device=device, dtype=dtype)


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
    pretrained: bool | str | os.PathLike | None = True,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
) -> Clip:
    """Build a `Clip` from an open_clip model name and its pretrained weights, a weights file, or None.

    ``pretrained=True`` (default): the tag in the name (``"ViT-B-16-quickgelu:openai"``), else ``"openai"``; a
    tag: that tag's weights; a path: a weights file; ``None``: random weights on purpose (drawn reproducibly
    from ``seed``, without touching the global random state). Weights that are neither cached nor
    downloadable raise `WeightsUnavailableError` within seconds, never random weights. ``cache_dir`` defaults
    to ``$GRADECLIP_WEIGHTS``, a folder of weights packed for machines without internet. The ShapesWorld
    models shipped in ``data/`` load by name: ``"shapes"``, ``"shapes-tuned"`` (after Grad-ECLIP-guided
    fine-tuning), ``"shapes-resnet"`` (a ResNet image tower); a path as ``pretrained`` reads such a model from
    another folder.
    """
    entry = shipped(name, "clip")
    if entry is not None:
        return _load_shipped(name, entry, pretrained, device, as_dtype(dtype), seed)
    cache_dir = cache_dir or os.environ.get(WEIGHTS_ENV) or None
    if pretrained is True:
        pretrained = _default_tag(name)
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
    return Clip(model, tokenizer_for(name), preprocess_cfg=cfg, name=name, pretrained=label)
