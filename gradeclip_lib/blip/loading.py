"""`load_blip`: a BLIP retrieval model by Hugging Face name with its weights (from the local cache, or
downloaded when the hub answers), from a folder saved with ``save_pretrained``, or with random weights
on purpose. Never random weights by accident."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from ..errors import WeightsUnavailableError
from ..models.loading import hub_reachable
from ..models.names import how_to_make, shipped
from ..samples import DATA_DIR
from .model import Blip

DEFAULT_BLIP = "Salesforce/blip-itm-base-coco"
SHAPES_BLIP_DIR = DATA_DIR / "shapes-blip"  # the small BLIP trained on ShapesWorld (see `shapes.py`)


def _cached(name: str) -> bool:
    """Whether the config and the weights of a hub model are in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    def has(file: str) -> bool:
        return isinstance(try_to_load_from_cache(name, file), str)

    return has("config.json") and (has("model.safetensors") or has("pytorch_model.bin"))


def _offline_message(name: str) -> str:
    return (f"no weights for {name} on this machine and no network to download them.\n"
            f"  - with internet, run once: python -c \"import gradeclip_lib as gl; gl.load_blip('{name}')\"\n"
            f"    (Hugging Face caches them; copy that cache to offline machines), or\n"
            f"  - pass a folder saved with save_pretrained: gl.load_blip('{name}', pretrained='/path/to/folder'), or\n"
            f"  - with its config and tokenizer cached, random weights on purpose: "
            f"gl.load_blip('{name}', pretrained=None).")


def load_blip(name: str = DEFAULT_BLIP, pretrained: bool | str | os.PathLike | None = True,
              device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> Blip:
    """A `Blip` from a hub name (``pretrained=True``: cached or downloaded weights; a clear error within
    seconds offline) or from a local folder (``pretrained=path``) holding the model and its processor.
    ``"shapes-blip"`` is the small BLIP trained on ShapesWorld, shipped in ``data/shapes-blip``.
    ``pretrained=None``: the same architecture and tokenizer with random weights drawn from ``seed``."""
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipProcessor

    entry = shipped(name, "blip")
    if entry is not None and pretrained in (True, None):
        source, local, label = str(entry.folder), True, entry.folder.name
        if not (entry.folder / "config.json").is_file():
            raise WeightsUnavailableError(f"no BLIP model saved in {entry.folder}; train one with "
                                          f"`{how_to_make('shapes-blip', entry.folder)}`")
    elif pretrained is True or pretrained is None:
        local = _cached(name)
        if not (local or hub_reachable()):
            raise WeightsUnavailableError(_offline_message(name))
        source, label = name, "pretrained"
    else:
        path = Path(pretrained)
        if not (path / "config.json").is_file():
            hint = f"; train one with `{how_to_make('shapes-blip', path)}`" if shipped(name, "blip") else ""
            raise WeightsUnavailableError(f"no BLIP model saved in {path} (needs config.json and the weights){hint}")
        label = path.name if shipped(name, "blip") else str(path)  # the shipped model, not this clone's path
        source, local = str(path), True
    with _quiet_loading():
        if pretrained is None:  # the architecture and tokenizer of ``source``, random weights on purpose
            config = BlipConfig.from_pretrained(source, local_files_only=local)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = BlipForImageTextRetrieval(config).to(device=device, dtype=dtype)
            label = None
        else:
            model = BlipForImageTextRetrieval.from_pretrained(source, local_files_only=local, dtype=dtype).to(device)
        processor = BlipProcessor.from_pretrained(source, local_files_only=local)
    images = processor.image_processor
    return Blip(model, processor.tokenizer, name=name, pretrained=label, mean=images.image_mean,
                std=images.image_std, image_size=images.size["height"])


@contextlib.contextmanager
def _quiet_loading():
    """Without transformers' per-tensor "Loading weights" bar (a book page would show it), restored after."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()
