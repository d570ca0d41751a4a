"""Grad-ECLIP-guided fine-tuning of any open_clip ViT on captioned images (COCO, a captioned folder):
the real-data version of the ShapesWorld run, for a reader with weights. Phrases are the entries of a
list (e.g. COCO's category names) found in each caption; their regions come from Grad-ECLIP maps of a
frozen copy, computed batch by batch; the run is checkpointed and resumes."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..explain import explain
from ..models.clip import Clip
from ..training.checkpoint import load_checkpoint, remove_checkpoint, save_checkpoint
from ..training.steps import contrastive_loss, lr_at
from .dense import encode_with_dense
from .loss import region_phrase_loss
from .regions import map_weights, pool_regions


def caption_phrases(caption: str, phrases: Sequence[str]) -> list[str]:
    """The entries of ``phrases`` that occur in ``caption`` as whole words (case-insensitive), longest
    first and without overlapping ("red car" wins over "car"), in the order of the caption."""
    text = caption.lower()
    taken = [False] * len(text)
    found = []
    for phrase in sorted(set(phrases), key=len, reverse=True):
        for m in re.finditer(rf"\b{re.escape(phrase.lower())}\b", text):
            if not any(taken[m.start() : m.end()]):
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
                found.append((m.start(), phrase))
    return [p for _, p in sorted(found)]


@dataclass(frozen=True)
class CaptionedConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-5
    warmup: float = 0.1
    weight_decay: float = 0.05
    local_weight: float = 1.0
    seed: int = 0
    save_every: int = 100


def _lr(step: int, cfg: CaptionedConfig) -> float:

    return lr_at(step, cfg)  # warm-up and cosine decay, as the ShapesWorld training


def batch_losses(model, frozen: Clip, images: Sequence, captions: Sequence[str], phrases: Sequence[list[str]],
                 scale: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """(global, local) losses of one batch: CLIP's contrastive loss of images against captions, and the
    region-phrase loss of each (image, phrase) pair, its region pooled under the frozen model's
    Grad-ECLIP map (standard crop, so that maps and dense features share the grid)."""
    pixels = frozen.crop(list(images))
    img, dense = encode_with_dense(model.visual, pixels)
    txt = model.encode_text(frozen.tokenize(list(captions)))
    index = torch.arange(len(images), device=img.device)
    loss_global = contrastive_loss(img.float(), txt.float(), index, index, scale, "same")
    pairs = [(i, p) for i, ps in enumerate(phrases) for p in ps]
    if not pairs:
        return loss_global, torch.zeros((), device=img.device)
    image_of = torch.tensor([i for i, _ in pairs], device=img.device)
    rows = list(pixels)  # one object per image: its phrases share one frozen forward pass
    maps = explain(frozen, [rows[i] for i, _ in pairs], [p for _, p in pairs], preprocess="crop").maps
    distinct = sorted({p for _, p in pairs})
    labels = torch.tensor([distinct.index(p) for _, p in pairs], device=img.device)
    regions = pool_regions(dense.float(), map_weights(maps).to(dense.device), image_of)
    phrase_emb = model.encode_text(frozen.tokenize(distinct))
    return loss_global, region_phrase_loss(regions, phrase_emb.float(), labels, scale)


def finetune_captioned(clip: Clip, images: Sequence, captions: Sequence[str], phrase_list: Sequence[str],
                       cfg: CaptionedConfig = CaptionedConfig(), out: str | Path | None = None,
                       progress: bool = True) -> tuple[Clip, dict]:
    """Fine-tune a copy of ``clip`` on (image, caption) pairs; ``out`` (a folder) gets a checkpoint every
    ``cfg.save_every`` steps, from which the same call resumes, and ``model.safetensors`` at the end
    (load it with ``gl.load_clip(name, pretrained=".../model.safetensors")``)."""
    from safetensors.torch import save_file

    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions: give one caption per image")
    phrases = [caption_phrases(c, phrase_list) for c in captions]
    if not any(phrases):
        raise ValueError("no phrase of the list occurs in any caption: give phrases the captions use")
    frozen = clip
    model = copy.deepcopy(clip.model).float().train().requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(cfg.seed)
    history: dict = {"step": [], "global": [], "local": [], "config": asdict(cfg)}
    first = 0
    if out is not None and (Path(out) / "model.safetensors").is_file() and not (Path(out) / "checkpoint.pt").is_file():
        raise FileExistsError(f"{out} holds a finished run (model.safetensors); give another folder")
    if out is not None and (Path(out) / "checkpoint.pt").is_file():
        state = load_checkpoint(out)
        if state["history"]["config"] != asdict(cfg):
            raise ValueError(f"the run in {out} was started with another config; use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        history, first = state["history"], state["step"]
    for step in tqdm(range(first, cfg.steps), desc="fine-tuning", disable=not progress, initial=first,
                     total=cfg.steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        batch = torch.randint(len(images), (cfg.batch_size,), generator=gen).tolist()
        scale = model.logit_scale.exp().clamp(max=100)
        loss_global, loss_local = batch_losses(model, frozen, [images[i] for i in batch],
                                               [captions[i] for i in batch], [phrases[i] for i in batch], scale)
        loss = loss_global + cfg.local_weight * loss_local
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["step"].append(step + 1)
        history["global"].append(float(loss_global.detach()))
        history["local"].append(float(loss_local.detach()))
        if out is not None and ((step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps):
            save_checkpoint(out, {"step": step + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                  "generator": gen.get_state(), "history": history})
    model.eval().requires_grad_(False)
    if out is not None:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, Path(out) / "model.safetensors")
        remove_checkpoint(out)
    tuned = Clip(model, clip.tokenizer, preprocess_cfg=asdict(clip.preprocess_cfg), name=clip.name,
                 pretrained="fine-tuned")
    return tuned, history
