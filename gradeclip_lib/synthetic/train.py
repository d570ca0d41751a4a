"""Contrastive training of the ShapesWorld CLIP (``python -m gradeclip_lib.synthetic train``).

Multi-positive targets: every caption of the same set of objects is a right answer for an image.
AdamW with linear warm-up and cosine decay; bf16 autocast on CUDA. Seeded: the same command and seed
give the same model on the same hardware and software.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import SceneTensors, render_scenes
from .model import MEAN, STD, build_model, default_config, save, wrap


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 512
    scenes: int = 120_000
    n_objects: tuple[int, int] = (1, 3)
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # share of the steps
    seed: int = 0
    eval_every: int = 250
    model: dict = field(default_factory=default_config)


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, groups: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy with soft targets: pairs showing the same objects all count as positives."""
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    same = (groups[:, None] == groups[None, :]).float()
    targets = same / same.sum(1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def lr_at(step: int, cfg: TrainConfig) -> float:
    warm = max(1, int(cfg.warmup * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _pixels(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = images.to(device, non_blocking=True).float().div_(255)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def train(cfg: TrainConfig, out: str | Path | None = None, device: str | None = None,
          data: SceneTensors | None = None, workers: int | None = None, progress: bool = True) -> dict:
    """Train a ShapesWorld CLIP; returns its history, and saves model + history to ``out`` if given."""
    from .evaluate import zero_shot_accuracy

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    data = data or render_scenes(cfg.scenes, seed=cfg.seed, n_objects=cfg.n_objects,
                                 size=cfg.model["vision_cfg"]["image_size"], workers=workers, progress=progress)
    render_s = time.perf_counter() - start
    model = build_model(cfg.model).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(cfg.seed)
    images, ids, groups = data.images, data.ids, data.groups
    if device.type == "cuda":
        images, ids, groups = images.to(device), ids.to(device), groups.to(device)
    history: dict = {"step": [], "loss": [], "lr": [], "eval_step": [], "zero_shot": [],
                     "config": {**asdict(cfg), "device": str(device)}, "render_seconds": render_s}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    running, bar = 0.0, tqdm(range(cfg.steps), desc="training", disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = torch.randint(len(images), (cfg.batch_size,), generator=gen).to(images.device)
        with autocast:
            img = model.encode_image(_pixels(images[batch], device))
            txt = model.encode_text(ids[batch].to(device))
            loss = contrastive_loss(img.float(), txt.float(), groups[batch].to(device),
                                    model.logit_scale.exp().clamp(max=100))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += float(loss.detach())
        if (step + 1) % 25 == 0 or step + 1 == cfg.steps:
            count = (step % 25) + 1
            history["step"].append(step + 1)
            history["loss"].append(running / count)
            history["lr"].append(lr_at(step, cfg))
            bar.set_postfix(loss=f"{running / count:.3f}")
            running = 0.0
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            model.eval()
            acc = zero_shot_accuracy(wrap(model, cfg.model), n=300, seed=10_000 + cfg.seed)
            model.train().requires_grad_(True)
            history["eval_step"].append(step + 1)
            history["zero_shot"].append(acc)
    history["train_seconds"] = time.perf_counter() - start - render_s
    model.eval()
    if out is not None:
        save(model, cfg.model, out)
        (Path(out) / "history.json").write_text(json.dumps(history, indent=1))
    history["model"] = model
    return history
