"""Contrastive training of the ShapesWorld CLIP (``python -m gradeclip_lib shapes train``).

Multi-positive targets: a caption is a right answer for every image that shows all the objects it
names (captions may name only some of a scene's objects, see `render_scenes`). AdamW with linear
warm-up and cosine decay; bf16 autocast on CUDA. Seeded: the same command and seed give the same model
on the same hardware and software.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..models.shapes import PRESETS, build_model, default_config, load_shapes_clip, save, wrap
from ..models.shapes_transfer import start_from_clip
from ..synthetic.data import SceneTensors, render_scenes
from ..training.checkpoint import load_checkpoint, remove_checkpoint, save_checkpoint
from ..training.steps import (
    _check_positives,
    contrastive_loss,
    lr_at,
    mixed_precision,
    normalized_pixels,
    sigmoid_loss,
)
from .evaluate import training_checks

PRECISIONS = ("bf16", "fp32")
LOG_EVERY = 25  # steps per logged loss
CHECKS = ("zero_shot", "binding", "pointing", "pointing_attention")  # measured at each evaluation


@dataclass
class TrainConfig:
    """The recipe of a run. The defaults are the shipped model's (the `small` preset, about 20 minutes on
    two CPU cores), chosen by the comparison in ``data/results/shapes_recipes_cpu.json``."""

    steps: int = 3000
    batch_size: int = 256
    scenes: int = 120_000
    n_objects: tuple[int, int] = (1, 3)
    # A caption is right only for images of exactly its objects. Measured alternatives: "subset" (right for
    # every image holding its objects) with partial captions (a share of multi-object scenes captioned with
    # only some of their objects): higher binding, lower zero-shot accuracy and pointing game.
    positives: str = "same"
    partial_captions: float = 0.0
    # The data-randomisation control of the sanity checks (Adebayo et al. 2018): captions permuted across images
    # (seeded), so that the only image-text relation left to learn is memorisation of random pairs.
    shuffle_captions: bool = False
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # share of the steps
    seed: int = 0
    eval_every: int = 250
    precision: str = "bf16"  # autocast; weights and optimiser stay fp32
    # A trained ShapesWorld CLIP's folder: a SigLIP starts from its image blocks and text tower
    # (models/shapes_transfer.py), its MAP head, text projection, scale and bias fresh.
    init_from: str | None = None
    model: dict = field(default_factory=default_config)

    def __post_init__(self) -> None:
        _check_positives(self.positives)
        if not 0 <= self.partial_captions <= 1:
            raise ValueError(f"partial_captions is a share between 0 and 1, got {self.partial_captions}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        self.n_objects = tuple(self.n_objects)

    @classmethod
    def from_dict(cls, config: dict) -> TrainConfig:
        """The config of a saved history (extra keys such as ``device`` ignored; older histories, written
        before partial captions and bf16, trained with full captions, exact-set positives and fp32)."""
        config = {"partial_captions": 0.0, "positives": "same", "precision": "fp32", "shuffle_captions": False,
                  **config}
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})


def train_command(config: dict) -> str:
    """The command line that trains the model of a saved history's ``config`` again."""
    cfg = TrainConfig.from_dict(config)
    preset = next((name for name in PRESETS if default_config(name) == config["model"]), None)
    if preset is None:
        raise ValueError("this model's architecture is no preset; train it from Python with TrainConfig(model=...)")
    lo, hi = cfg.n_objects
    flags = {"preset": preset, "objects": f"{lo}-{hi}" if hi != lo else str(lo), "steps": cfg.steps,
             "batch-size": cfg.batch_size, "scenes": cfg.scenes, "lr": cfg.lr,
             "partial-captions": cfg.partial_captions, "positives": cfg.positives, "precision": cfg.precision,
             "seed": cfg.seed, "eval-every": cfg.eval_every, **({"init-from": cfg.init_from} if cfg.init_from else {})}
    command = "python -m gradeclip_lib shapes train " + " ".join(f"--{k} {v}" for k, v in flags.items())
    return command + (" --shuffle-captions" if cfg.shuffle_captions else "")


def shuffled_captions(data: SceneTensors, seed: int) -> SceneTensors:
    """The same images, each paired with the caption of another image (one seeded permutation); the objects an
    image is taken to show are those its new caption names, so the targets follow the random pairs."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return SceneTensors(images=data.images, ids=data.ids[order], image_sets=data.caption_sets[order],
                        caption_sets=data.caption_sets[order])


def train(cfg: TrainConfig | None = None, out: str | Path | None = None, device: str | None = None,
          data: SceneTensors | None = None, workers: int | None = None, progress: bool = True,
          resume: bool = False, stop_at: int | None = None) -> dict:
    """Train a ShapesWorld CLIP; returns its history, and saves model + history to ``out`` if given.

    With ``out``, the full training state is checkpointed at every evaluation: ``resume=True`` continues
    the run saved in ``out`` (its own config; ``cfg`` may be left out) and ends with the same weights as
    an uninterrupted run. ``stop_at``: stop after that step, as an interruption would, leaving the
    checkpoint (a run spread over two sessions).
    """

    if resume:
        if out is None:
            raise ValueError("resume=True continues the run saved in `out`: give the folder")
        state = load_checkpoint(out)
        saved = TrainConfig.from_dict(state["history"]["config"])
        if cfg is not None and cfg != saved:
            raise ValueError(f"the run in {out} was started with another config; resume it without one")
        cfg = saved
    else:
        state = None
        cfg = cfg or TrainConfig()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    data = data or render_scenes(cfg.scenes, seed=cfg.seed, n_objects=cfg.n_objects,
                                 size=cfg.model["vision_cfg"]["image_size"], workers=workers, progress=progress,
                                 partial_captions=cfg.partial_captions)
    if cfg.shuffle_captions:
        data = shuffled_captions(data, cfg.seed)
    render_s = time.perf_counter() - start
    model = build_model(cfg.model)
    if cfg.init_from is not None and state is None:
        start_from_clip(model, load_shapes_clip(cfg.init_from).model)
    model = model.to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(cfg.seed)
    history: dict = {"step": [], "loss": [], "lr": [], "eval_step": [], **{k: [] for k in CHECKS},
                     "config": {**asdict(cfg), "device": str(device)}, "render_seconds": 0.0, "train_seconds": 0.0}
    first = 0
    running = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no wait per step
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        history, first = state["history"], state["step"]
        history["resumed_at"] = [*history.get("resumed_at", []), first]
        running = state["running"].to(device)
    history["render_seconds"] += render_s
    images, ids, image_sets, caption_sets = data.images, data.ids, data.image_sets, data.caption_sets
    if device.type == "cuda":
        images, ids = images.to(device), ids.to(device)
        image_sets, caption_sets = image_sets.to(device), caption_sets.to(device)
    clock = time.perf_counter()
    last = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    bar = tqdm(range(first, last), desc="training", disable=not progress, initial=first, total=cfg.steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = torch.randint(len(images), (cfg.batch_size,), generator=gen).to(images.device)
        with mixed_precision(device, cfg.precision):
            img = model.encode_image(normalized_pixels(images[batch], device))
            txt = model.encode_text(ids[batch].to(device))
            scale, sets = model.logit_scale.exp().clamp(max=100), (image_sets[batch].to(device),
                                                                   caption_sets[batch].to(device))
            if model.logit_bias is not None:  # a SigLIP: the sigmoid loss
                loss = sigmoid_loss(img.float(), txt.float(), *sets, scale, model.logit_bias, cfg.positives)
            else:
                loss = contrastive_loss(img.float(), txt.float(), *sets, scale, cfg.positives)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += loss.detach()
        if (step + 1) % LOG_EVERY == 0 or step + 1 == cfg.steps:
            mean = float(running) / ((step % LOG_EVERY) + 1)
            history["step"].append(step + 1)
            history["loss"].append(mean)
            history["lr"].append(lr_at(step, cfg))
            bar.set_postfix(loss=f"{mean:.3f}")
            running.zero_()
        if (cfg.eval_every and (step + 1) % cfg.eval_every == 0) or step + 1 == cfg.steps:
            model.eval()
            clip = wrap(model, cfg.model)
            history["eval_step"].append(step + 1)
            for name, value in training_checks(clip, cfg.seed).items():
                history.setdefault(name, []).append(value)
            model.train().requires_grad_(True)
            now = time.perf_counter()
            history["train_seconds"] += now - clock
            clock = now
            if out is not None:  # a run stopped or killed from here on resumes at this step
                # the checkpoint first: a history that shows this evaluation then always has its checkpoint
                save_checkpoint(out, {"step": step + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                      "generator": gen.get_state(), "running": running.cpu(), "history": history})
                save(model, cfg.model, out)
                _write_history(history, out)
    bar.close()
    if last < cfg.steps:  # stopped on purpose: the checkpoint of the last evaluation stays for --resume
        history["model"] = model.eval()
        return history
    model.eval()
    if out is not None:
        save(model, cfg.model, out)
        _write_history(history, out)
        remove_checkpoint(out)
    history["model"] = model
    return history


def _write_history(history: dict, out: str | Path) -> None:
    path = Path(out) / "history.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v for k, v in history.items() if k != "model"}, indent=1))
    os.replace(tmp, path)
