"""Contrastive training of the ShapesWorld CLIP (``python -m gradeclip_lib.synthetic train``).

Multi-positive targets: a caption is a right answer for every image that shows all the objects it
names (captions may name only some of a scene's objects, see `render_scenes`). AdamW with linear
warm-up and cosine decay; bf16 autocast on CUDA. Seeded: the same command and seed give the same model
on the same hardware and software.
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
from .model import MEAN, PRESETS, STD, build_model, default_config, save, wrap

POSITIVES = ("subset", "same")  # which captions count as right for an image: see `contrastive_loss`


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 512
    scenes: int = 120_000
    n_objects: tuple[int, int] = (1, 3)
    # The first recipe's targets, still the best measured (README): a caption is right only for images of
    # exactly its objects. Options to try: "subset" (right for every image holding its objects) and
    # partial captions (share of multi-object scenes captioned with only some of their objects).
    positives: str = "same"
    partial_captions: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # share of the steps
    seed: int = 0
    eval_every: int = 250
    model: dict = field(default_factory=default_config)

    def __post_init__(self) -> None:
        _check_positives(self.positives)
        if not 0 <= self.partial_captions <= 1:
            raise ValueError(f"partial_captions is a share between 0 and 1, got {self.partial_captions}")


def train_command(config: dict) -> str:
    """The command line that trains the model of a saved history's ``config`` again (older histories,
    written before partial captions, trained with full captions and exact-set positives)."""
    preset = next((name for name in PRESETS if default_config(name) == config["model"]), None)
    if preset is None:
        raise ValueError("this model's architecture is no preset; train it from Python with TrainConfig(model=...)")
    lo, hi = config["n_objects"]
    flags = {"preset": preset, "objects": f"{lo}-{hi}" if hi != lo else str(lo), "steps": config["steps"],
             "batch-size": config["batch_size"], "scenes": config["scenes"], "lr": config["lr"],
             "partial-captions": config.get("partial_captions", 0.0), "positives": config.get("positives", "same"),
             "seed": config["seed"], "eval-every": config["eval_every"]}
    return "python -m gradeclip_lib.synthetic train " + " ".join(f"--{k} {v}" for k, v in flags.items())


def _check_positives(positives: str) -> None:
    if positives not in POSITIVES:
        raise ValueError(f"positives must be one of {POSITIVES}, got {positives!r}")


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, image_sets: torch.Tensor, caption_sets: torch.Tensor,
                     scale: torch.Tensor, positives: str = "subset") -> torch.Tensor:
    """Symmetric cross-entropy with soft targets: caption j is a positive for image i whenever the objects
    it names (bit mask ``caption_sets[j]``) are all in the image (``image_sets[i]``); with
    ``positives="same"`` only when they are exactly the image's objects (the first recipe)."""
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    _check_positives(positives)
    if positives == "subset":
        true = ((caption_sets[None, :] & ~image_sets[:, None]) == 0).float()  # [image, caption]
    else:
        true = (caption_sets[None, :] == image_sets[:, None]).float()
    to_text = F.cross_entropy(logits, true / true.sum(1, keepdim=True))
    to_image = F.cross_entropy(logits.T, true.T / true.T.sum(1, keepdim=True))
    return (to_text + to_image) / 2


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
                                 size=cfg.model["vision_cfg"]["image_size"], workers=workers, progress=progress,
                                 partial_captions=cfg.partial_captions)
    render_s = time.perf_counter() - start
    model = build_model(cfg.model).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(cfg.seed)
    images, ids, image_sets, caption_sets = data.images, data.ids, data.image_sets, data.caption_sets
    if device.type == "cuda":
        images, ids = images.to(device), ids.to(device)
        image_sets, caption_sets = image_sets.to(device), caption_sets.to(device)
    history: dict = {"step": [], "loss": [], "lr": [], "eval_step": [], "zero_shot": [],
                     "config": {**asdict(cfg), "device": str(device)}, "render_seconds": render_s}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    running = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no wait per step
    bar = tqdm(range(cfg.steps), desc="training", disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = torch.randint(len(images), (cfg.batch_size,), generator=gen).to(images.device)
        with autocast:
            img = model.encode_image(_pixels(images[batch], device))
            txt = model.encode_text(ids[batch].to(device))
            loss = contrastive_loss(img.float(), txt.float(), image_sets[batch].to(device),
                                    caption_sets[batch].to(device), model.logit_scale.exp().clamp(max=100),
                                    cfg.positives)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += loss.detach()
        if (step + 1) % 25 == 0 or step + 1 == cfg.steps:
            mean = float(running) / ((step % 25) + 1)
            history["step"].append(step + 1)
            history["loss"].append(mean)
            history["lr"].append(lr_at(step, cfg))
            bar.set_postfix(loss=f"{mean:.3f}")
            running.zero_()
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            model.eval()
            acc = zero_shot_accuracy(wrap(model, cfg.model), n=300, seed=10_000 + cfg.seed)
            model.train().requires_grad_(True)
            history["eval_step"].append(step + 1)
            history["zero_shot"].append(acc)
            if out is not None:  # a checkpoint: a run stopped early still leaves its latest model
                _save(model, cfg, history, out, start + render_s)
    history["train_seconds"] = time.perf_counter() - start - render_s
    model.eval()
    if out is not None:
        _save(model, cfg, history, out)
    history["model"] = model
    return history


def _save(model: torch.nn.Module, cfg: TrainConfig, history: dict, out: str | Path, since: float | None = None) -> None:
    if since is not None:
        history["train_seconds"] = time.perf_counter() - since
    save(model, cfg.model, out)
    (Path(out) / "history.json").write_text(json.dumps(history, indent=1))
