"""Weights for a lab without internet: pack them once where there is internet, copy the folder to the students'
machines, and point ``GRADECLIP_WEIGHTS`` at it; `load_clip` then reads them from there, offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import open_clip

from ..errors import WeightsUnavailableError
from .loading import cached_weights, load_clip, split_name


def pack_weights(specs: list[str], out: str | os.PathLike) -> list[Path]:
    """Put the weights of each model ``spec`` ('ViT-B-16-quickgelu:openai') into ``out``, laid out as the cache
    `load_clip` reads with ``cache_dir=out``: copied from this machine's cache when they are there, else
    downloaded into ``out``. Returns the weights files now in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    packed = []
    for spec in specs:
        name, tag = split_name(spec, "openai")
        cfg = open_clip.get_pretrained_cfg(name, tag or "openai")
        if not cfg:
            raise WeightsUnavailableError(f"{spec}: open_clip knows no such pretrained weights")
        local = cached_weights(cfg, None)
        if local is None:  # not on this machine yet: download straight into the folder
            load_clip(name, tag, cache_dir=str(out))
        elif cfg.get("hf_hub"):  # the hub's cache: .../models--org--repo/snapshots/<rev>/<file>
            repo = Path(local).parents[2]
            shutil.copytree(repo, out / repo.name, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(local, out / Path(local).name)
        found = cached_weights(cfg, str(out))
        if found is None:
            raise WeightsUnavailableError(f"{spec}: the weights did not land in {out}")
        packed.append(Path(found))
    return packed
