"""`Classifier`: a timm VisionTransformer with its class names and preprocessing, in the shape
`gl.explain` expects of a model (patch size, mean and std, the standard crop, device and dtype)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.data import create_transform, resolve_data_config
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..errors import UnsupportedModelError
from ..images import ImageInput, as_image_list, prepare
from ..models.wrapped import WrappedModel


class Classifier(WrappedModel):
    """A supervised ViT classifier to explain: ``model`` (timm), ``class_names`` (index -> name)."""

    family = "timm_vit"  # its adapter and methods in the registry

    def __init__(self, model: nn.Module, class_names: Sequence[str] | None = None, name: str = "classifier",
                 pretrained: str | None = None) -> None:
        if not isinstance(model, VisionTransformer):
            raise UnsupportedModelError(f"{name}: {type(model).__name__} is not a timm VisionTransformer; "
                                        "Grad-ECLIP for classifiers explains ViTs with a class token.")
        if not model.has_class_token or model.global_pool != "token":
            raise UnsupportedModelError(f"{name}: the classifier pools by {model.global_pool!r}; Grad-ECLIP "
                                        "reads the class token's row, so it needs global_pool='token'.")
        attn = model.blocks[-1].attn
        if not isinstance(getattr(attn, "norm", nn.Identity()), nn.Identity) or getattr(attn, "gate", None) is not None:
            raise UnsupportedModelError(f"{name}: the last attention normalises or gates its output before the "
                                        "projection; Grad-ECLIP's channel weights would not meet the values.")
        self.model = model.eval().requires_grad_(False)
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(model.num_classes)]
        if len(self.class_names) != model.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {model.num_classes} classes")
        known = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")  # else: the size it was built for
        config = resolve_data_config({} if known else {"input_size": (3, *model.patch_embed.img_size)}, model=model)
        self.mean, self.std = tuple(config["mean"]), tuple(config["std"])
        self.crop_transform = create_transform(**config)
        self.name, self.pretrained = name, pretrained

    def _details(self) -> str:
        return f", {len(self.class_names)} classes"

    @property
    def patch_size(self) -> int:
        return int(self.model.patch_embed.patch_size[0])

    def check_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        """The token grid of ``pixels``; a clear error when the model only takes its training size."""
        grid = (pixels.shape[-2] // self.patch_size, pixels.shape[-1] // self.patch_size)
        if not self.model.dynamic_img_size and grid != tuple(self.model.patch_embed.grid_size):
            raise UnsupportedModelError(
                f"{self.name} takes only {tuple(self.model.patch_embed.img_size)} inputs; use preprocess='crop', "
                "or create it with timm.create_model(..., dynamic_img_size=True) (load_classifier does)")
        return grid

    def class_index(self, targets: int | str | Sequence[int | str] | torch.Tensor) -> torch.Tensor:
        """Class ids [T] from ids or names (a name must be one of ``class_names``)."""
        if isinstance(targets, torch.Tensor):
            items = targets.flatten().tolist()
        else:
            items = [targets] if isinstance(targets, (int, str)) else list(targets)
        ids = []
        for item in items:
            if isinstance(item, str):
                if item not in self.class_names:
                    close = [c for c in self.class_names if item.lower() in c.lower()][:5]
                    raise ValueError(f"{item!r} is not a class of {self.name}" +
                                     (f"; did you mean {close}?" if close else "; see .class_names"))
                ids.append(self.class_names.index(item))
            else:
                if not 0 <= int(item) < len(self.class_names):
                    raise ValueError(f"class id {item} out of range 0..{len(self.class_names) - 1}")
                ids.append(int(item))
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def crop(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """The classifier's standard preprocessing (resize, centre crop, normalise) [B, 3, S, S]."""
        pixels, _ = prepare(as_image_list(images), self.patch_size, self.mean, self.std, crop=self.crop_transform)
        return torch.stack(pixels).to(self.device, self.dtype)

    @torch.no_grad()
    def logits(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """Class logits [B, C] with the standard preprocessing."""
        return self.model(self.crop(images)).float()
