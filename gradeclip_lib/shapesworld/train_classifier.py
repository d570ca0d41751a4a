"""A supervised ViT classifier on ShapesWorld: 30 classes ('red circle', ...), trained on single-object
scenes, so that its Grad-ECLIP maps can be scored against the true masks of multi-object scenes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..classifiers.classifier import Classifier
from ..classifiers.loading import SHAPES_CLASSIFIER_DIR, load_shapes_classifier, shapes_classifier_model
from ..metrics import rate_with_interval
from ..synthetic.data import MEAN, STD, render_scenes
from ..synthetic.scenes import make_scenes
from ..training.steps import lr_at, mixed_precision, normalized_pixels
from .evaluate import PROMPTS

CLASSES = [p.removeprefix("a ") for p in PROMPTS]  # 'red circle', ...: class i is bit i of `object_bits`
ARCHITECTURE = {"img_size": 64, "patch_size": 8, "embed_dim": 128, "depth": 4, "num_heads": 4}


def train_shapes_classifier(out: str | Path = SHAPES_CLASSIFIER_DIR, steps: int = 4000, batch_size: int = 128,
                            scenes: int = 60_000, lr: float = 1e-3, seed: int = 0, workers: int | None = None,
                            progress: bool = True) -> Classifier:
    """Train the classifier on ``scenes`` single-object scenes of seed 200 000 + ``seed`` (AdamW, warm-up
    and cosine decay, bf16 autocast) and save it to ``out`` with its history (loss, held-out accuracy)."""
    config = {"vit": ARCHITECTURE, "classes": CLASSES, "mean": list(MEAN), "std": list(STD),
              "recipe": {"steps": steps, "batch_size": batch_size, "scenes": scenes, "lr": lr, "seed": seed}}
    torch.manual_seed(seed)
    data = render_scenes(scenes, seed=200_000 + seed, n_objects=(1, 1), size=ARCHITECTURE["img_size"],
                         workers=workers, progress=progress)
    labels = single_object_labels(data.image_sets)
    model = shapes_classifier_model(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = SimpleNamespace(lr=lr, warmup=0.05, steps=steps)  # lr_at's warm-up and cosine decay
    gen = torch.Generator().manual_seed(seed)
    device = torch.device("cpu")
    history: dict = {"step": [], "loss": [], "config": config}
    start = time.perf_counter()
    for step in tqdm(range(steps), desc="training the classifier", disable=not progress):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, schedule)
        batch = torch.randint(len(labels), (batch_size,), generator=gen)
        with mixed_precision(device, "bf16"):
            logits = model(normalized_pixels(data.images[batch], device))
            loss = F.cross_entropy(logits.float(), labels[batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            history["step"].append(step + 1)
            history["loss"].append(float(loss.detach()))
    history["train_seconds"] = time.perf_counter() - start
    _save(model, config, out)
    classifier = load_shapes_classifier(out)
    history["accuracy"] = rate_with_interval(accuracy_hits(classifier))
    (Path(out) / "history.json").write_text(json.dumps(history, indent=1))
    return classifier


def single_object_labels(image_sets: torch.Tensor) -> torch.Tensor:
    """Class ids [N] of single-object scenes from their object bit masks (`object_bits`: one bit set)."""
    if not bool(((image_sets & (image_sets - 1)) == 0).all()):
        raise ValueError("every scene must hold exactly one object")
    return torch.log2(image_sets.double()).round().long()


def _save(model: torch.nn.Module, config: dict, out: str | Path) -> None:
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()},
              out / "model.safetensors")


@torch.no_grad()
def accuracy_hits(classifier: Classifier, n: int = 500, seed: int = 210_000) -> torch.Tensor:
    """Whether the classifier names the object of ``n`` held-out single-object scenes (bool [n])."""
    scenes = make_scenes(n, seed=seed, n_objects=1, size=ARCHITECTURE["img_size"])
    truth = torch.tensor([CLASSES.index(f"{s.objects[0].colour} {s.objects[0].shape}") for s in scenes])
    return classifier.logits([s.image for s in scenes]).argmax(1).cpu() == truth
