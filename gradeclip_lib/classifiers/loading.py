"""`load_classifier`: a timm ViT classifier by name with its pretrained weights (from the local Hugging
Face cache, or downloaded when the hub answers), a weights file, random weights on purpose, or the
ShapesWorld classifier shipped in ``data/``. Never random weights by accident."""

from __future__ import annotations

import json
import os
from pathlib import Path

import timm
import torch

from ..errors import WeightsUnavailableError
from ..models.loading import hub_reachable
from ..models.names import how_to_make, shipped
from ..samples import DATA_DIR
from .classifier import Classifier

SHAPES_CLASSIFIER_DIR = DATA_DIR / "shapes-classifier"


def imagenet_names(model) -> list[str] | None:
    """Readable class names of a timm ImageNet classifier (None for other label sets)."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(model)
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return [info.index_to_description(i).split(",")[0] for i in range(model.num_classes)]


def _cached(model_name: str) -> bool:
    """Whether the pretrained weights of a timm name are in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(model_name)
    hub = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub:
        return False
    return any(isinstance(try_to_load_from_cache(hub, f), str)
               for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))


def load_classifier(name: str, pretrained: bool | str | os.PathLike | None = True, device: str | torch.device = "cpu",
                    class_names: list[str] | None = None, num_classes: int | None = None, seed: int = 0
                    ) -> Classifier:
    """A `Classifier` from a timm model name (e.g. ``"vit_base_patch16_224.augreg_in21k_ft_in1k"``).

    ``pretrained=True``: the name's pretrained weights (a fast, clear error offline when they are not
    cached); a path: a state dict file (``.safetensors`` or ``.pth``); ``None``: random weights, on
    purpose (drawn from ``seed``). ``"shapes"`` (or ``"shapes-classifier"``) loads the ShapesWorld classifier of
    ``data/shapes-classifier`` (a folder as ``pretrained``: one trained elsewhere). Models are created with
    ``dynamic_img_size=True`` so that images keep their size (``preprocess="keep"``).
    """
    entry = shipped(name, "classifier")
    if entry is not None:
        if pretrained is None or pretrained is False:
            return random_shapes_classifier(entry.folder, device, seed)
        return load_shapes_classifier(entry.folder if pretrained is True else pretrained, device)
    if pretrained is None or pretrained is False:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _timm_classifier(name, None, device, class_names, num_classes)
    return _timm_classifier(name, pretrained, device, class_names, num_classes)


def _timm_classifier(name: str, pretrained: bool | str | os.PathLike | None, device: str | torch.device,
                     class_names: list[str] | None, num_classes: int | None) -> Classifier:
    kwargs = {"dynamic_img_size": True, **({"num_classes": num_classes} if num_classes else {})}
    if pretrained is True:
        if not (_cached(name) or hub_reachable()):
            raise WeightsUnavailableError(
                f"no weights for the timm model {name} on this machine and no network to download them.\n"
                f"  - with internet, run once: python -c \"import gradeclip_lib as gl; gl.load_classifier('{name}')\"\n"
                f"  - pass a local file: gl.load_classifier('{name}', pretrained='/path/to/weights.safetensors'), or\n"
                f"  - use random weights on purpose: gl.load_classifier('{name}', pretrained=None).")
        model = timm.create_model(name, pretrained=True, **kwargs)
        label = "pretrained"
    elif pretrained is None:
        model = timm.create_model(name, pretrained=False, **kwargs)
        label = None
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise WeightsUnavailableError(f"no weights file at {path}")
        model = timm.create_model(name, pretrained=False, checkpoint_path=str(path), **kwargs)
        label = str(path)
    model = model.to(device)
    return Classifier(model, class_names or imagenet_names(model), name=name, pretrained=label)


def shapes_classifier_model(config: dict) -> torch.nn.Module:
    """The ShapesWorld classifier's architecture from its config (a small timm VisionTransformer)."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(**config["vit"], num_classes=len(config["classes"]), dynamic_img_size=True)


def random_shapes_classifier(folder: str | os.PathLike = SHAPES_CLASSIFIER_DIR, device: str | torch.device = "cpu",
                             seed: int = 0) -> Classifier:
    """The ShapesWorld classifier's architecture (from ``folder``'s config) with random weights drawn from ``seed``:
    what a model-randomisation sanity check compares the trained classifier with."""
    config = _shapes_config(Path(folder))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = shapes_classifier_model(config)
    return _wrap_shapes(model, config, device, pretrained=None)


def _shapes_config(folder: Path) -> dict:
    if not (folder / "config.json").is_file():
        raise WeightsUnavailableError(f"no ShapesWorld classifier in {folder}; train one with "
                                      f"`{how_to_make('shapes-classifier', folder)}` (minutes on a CPU)")
    return json.loads((folder / "config.json").read_text())


def _wrap_shapes(model: torch.nn.Module, config: dict, device: str | torch.device, pretrained: str | None
                 ) -> Classifier:
    size = config["vit"]["img_size"]
    model.pretrained_cfg = {**(getattr(model, "pretrained_cfg", None) or {}), "mean": tuple(config["mean"]),
                            "std": tuple(config["std"]), "input_size": (3, size, size), "crop_pct": 1.0,
                            "interpolation": "bicubic"}
    return Classifier(model.to(device), config["classes"], name="shapes-classifier", pretrained=pretrained)


def load_shapes_classifier(folder: str | os.PathLike = SHAPES_CLASSIFIER_DIR, device: str | torch.device = "cpu"
                           ) -> Classifier:
    """The ViT classifier trained on single-object ShapesWorld scenes (30 classes 'red circle', ...)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = _shapes_config(folder)
    if not (folder / "model.safetensors").is_file():
        raise WeightsUnavailableError(f"no ShapesWorld classifier weights in {folder}; train them with "
                                      f"`{how_to_make('shapes-classifier', folder)}` (minutes on a CPU)")
    model = shapes_classifier_model(config)
    model.load_state_dict({k: v.float() for k, v in load_file(folder / "model.safetensors").items()})
    return _wrap_shapes(model, config, device, pretrained=folder.name)
