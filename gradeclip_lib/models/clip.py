"""`Clip`: an open_clip CLIP model with its tokenizer and preprocessing, ready to be explained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import open_clip
import torch
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transform import PreprocessCfg, image_transform_v2
from open_clip.transformer import ResidualAttentionBlock, TextTransformer, VisionTransformer
from PIL import Image
from torch import nn
from torchvision.transforms import Compose, Normalize, ToTensor

from ..errors import TextTooLongError, UnsupportedModelError
from ..images import ImageInput, as_image_list, load_image, prepare
from ..texts import as_text_list
from .resnet_tower import STRIDE
from .timm_towers import allow_any_size, first_weight, output_width, patch_side, timm_kind

BACKBONES = ("vit", "resnet", "siglip", "eva")  # open_clip's ViT and ResNet towers, its timm SigLIP and EVA-02


@dataclass(frozen=True)
class TextTower:
    """The pieces of a CLIP text transformer that explanations need, wherever the model keeps them."""

    token_embedding: nn.Embedding
    positional_embedding: torch.Tensor
    blocks: nn.ModuleList
    ln_final: nn.Module
    projection: torch.Tensor | nn.Linear | None
    attn_mask: torch.Tensor | None

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """Apply the text projection (a matrix or a linear layer) to pooled features."""
        if self.projection is None:
            return pooled
        if isinstance(self.projection, nn.Linear):
            return self.projection(pooled)
        return pooled @ self.projection


def _check_blocks(blocks: Sequence[nn.Module], where: str) -> None:
    for block in blocks:
        if not isinstance(block, ResidualAttentionBlock) or not isinstance(block.attn, nn.MultiheadAttention):
            raise UnsupportedModelError(
                f"the {where} uses {type(block).__name__} blocks; Grad-ECLIP here needs open_clip's standard "
                "ResidualAttentionBlock with nn.MultiheadAttention (models without qk-norm or scaled-cosine "
                "attention, e.g. 'ViT-B-16-quickgelu')."
            )
        if hasattr(block, "ln_1_kv"):
            raise UnsupportedModelError(f"the {where} uses cross-attention blocks, which are not supported.")


class Clip:
    """An open_clip CLIP model in eval mode with frozen weights, its tokenizer and its preprocessing.

    Explanations need gradients with respect to activations, never weights, so the wrapped model's
    parameters are set to ``requires_grad=False`` (this changes the model you pass in).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer=None,
        preprocess_cfg: dict | None = None,
        name: str = "custom",
        pretrained: str | None = None,
    ) -> None:
        visual = getattr(model, "visual", None)
        kind = timm_kind(visual, name)
        if kind is not None:
            self.backbone = kind
            allow_any_size(visual.trunk)
        elif isinstance(visual, ModifiedResNet):
            self.backbone = "resnet"
        elif isinstance(visual, VisionTransformer):
            self.backbone = "vit"
            if visual.attn_pool is not None:
                raise UnsupportedModelError(f"{name}: attentional pooling in the image tower is not supported.")
            _check_blocks(visual.transformer.resblocks, "image tower")
        else:
            kind = type(visual).__name__ if visual is not None else "no image tower"
            raise UnsupportedModelError(
                f"{name}: the image tower is {kind}; Grad-ECLIP here explains open_clip's VisionTransformer "
                "(e.g. 'ViT-B-16-quickgelu'), ModifiedResNet (e.g. 'RN50') and timm SigLIP and EVA-02 towers "
                "(e.g. 'ViT-B-16-SigLIP2', 'EVA02-B-16')."
            )
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer if tokenizer is not None else open_clip.get_tokenizer("ViT-B-16")
        cfg = dict(preprocess_cfg or getattr(visual, "preprocess_cfg", None) or {})
        cfg.setdefault("size", visual.image_size)
        self.preprocess_cfg = PreprocessCfg(**cfg)
        self.crop_transform = image_transform_v2(self.preprocess_cfg, is_train=False)
        self.name = name
        self.pretrained = pretrained

    # ----------------------------------------------------------------- properties
    @property
    def embed_dim(self) -> int:
        """The width of the joint embedding space (image and text embeddings)."""
        if self.is_timm:
            return output_width(self.visual)
        return int(self.model.visual.output_dim)

    @property
    def is_timm(self) -> bool:
        """Whether the image tower is one of open_clip's timm towers (SigLIP, EVA-02)."""
        return self.backbone in ("siglip", "eva")

    @property
    def family(self) -> str:
        """The model family's name in the method registry: "clip_vit", "clip_resnet", "clip_siglip" or
        "clip_eva"."""
        return f"clip_{self.backbone}"

    @property
    def visual(self) -> VisionTransformer | ModifiedResNet:
        return self.model.visual

    @property
    def vision_blocks(self) -> nn.ModuleList:
        """The ViT image tower's attention blocks (a ResNet tower has none: UnsupportedModelError)."""
        if self.backbone == "resnet":
            raise UnsupportedModelError(
                f"{self.name} has a ResNet image tower: it has no attention blocks, only the attention pool "
                "at its end; this needs a ViT model."
            )
        if self.is_timm:
            raise UnsupportedModelError(f"{self.name} has a timm {self.backbone} image tower: its blocks are "
                                        "`.visual.trunk.blocks`, which this method does not read.")
        return self.visual.transformer.resblocks

    @property
    def device(self) -> torch.device:
        return self._first_weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self._first_weight.dtype

    @property
    def _first_weight(self) -> torch.Tensor:
        return first_weight(self.visual) if self.is_timm else self.visual.conv1.weight

    @property
    def patch_size(self) -> int:
        """Pixels per map cell: the ViT's patch side, or the ResNet's total stride (32)."""
        if self.backbone == "resnet":
            return STRIDE
        if self.is_timm:
            return patch_side(self.visual)
        ph, pw = self.visual.patch_size
        if ph != pw:
            raise UnsupportedModelError(f"{self.name}: non-square patches {ph}x{pw} are not supported.")
        return ph

    @property
    def crop_size(self) -> int:
        """The side of the model's square input (what ``preprocess="crop"`` resizes to)."""
        size = self.preprocess_cfg.size
        return int(size if isinstance(size, int) else size[0])

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.preprocess_cfg.mean)

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.preprocess_cfg.std)

    @property
    def context_length(self) -> int:
        return int(getattr(self.model, "context_length", 77))

    @property
    def text_tower(self) -> TextTower:
        """The text transformer's parts, for CLIP and CustomTextCLIP alike."""
        m = self.model
        text = getattr(m, "text", None)
        if text is not None and not isinstance(text, TextTransformer):
            raise UnsupportedModelError(
                f"{self.name}: the text tower is {type(text).__name__}; text explanations need open_clip's "
                "TextTransformer."
            )
        src = text if text is not None else m
        if getattr(src, "cls_emb", None) is not None:
            raise UnsupportedModelError(f"{self.name}: text towers with a class token are not supported.")
        pool = getattr(src, "pool_type", getattr(src, "text_pool_type", "argmax"))
        if pool != "argmax":
            raise UnsupportedModelError(f"{self.name}: text pooling '{pool}' is not supported (needs 'argmax').")
        blocks = src.transformer.resblocks
        _check_blocks(blocks, "text tower")
        return TextTower(
            token_embedding=src.token_embedding,
            positional_embedding=src.positional_embedding,
            blocks=blocks,
            ln_final=src.ln_final,
            projection=src.text_projection,
            attn_mask=src.attn_mask,
        )

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Clip:
        """Move the model (in place) and return self."""
        self.model.to(device=device, dtype=dtype)
        return self

    def __repr__(self) -> str:
        weights = self.pretrained if self.pretrained is not None else "random weights"
        return f"Clip({self.name!r}, {weights}, device={self.device}, dtype={self.dtype})"

    # ----------------------------------------------------------------- text
    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Token ids [B, context_length]; a text too long for the context raises instead of being cut."""
        texts = as_text_list(texts)
        encode = getattr(self.tokenizer, "encode", None)
        if encode is not None:
            for text in texts:
                n = len(encode(text)) + 2  # start and end tokens
                if n > self.context_length:
                    raise TextTooLongError(
                        f"the text {text[:60]!r}... has {n} tokens, more than the model's "
                        f"{self.context_length}; shorten it (CLIP would silently cut it)."
                    )
        return self.tokenizer(texts).to(self.device)

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        """Readable word pieces, one per token id (the end-of-word marker becomes nothing)."""
        return [self.tokenizer.decode([int(i)]).strip() for i in ids]

    @torch.no_grad()
    def encode_text(self, texts: str | Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Text embeddings [B, D] (unit norm unless ``normalize=False``)."""
        return self.model.encode_text(self.tokenize(texts), normalize=normalize).float()

    # ----------------------------------------------------------------- images
    def crop(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """The model's standard preprocessing (resize, centre crop, normalise): pixels [B, 3, S, S]."""
        pixels, _ = prepare(as_image_list(images), self.patch_size, self.mean, self.std, crop=self.crop_transform)
        return torch.stack(pixels).to(self.device, self.dtype)

    def crop_view(self, image: ImageInput) -> Image.Image:
        """What the model sees in crop mode, as a PIL image (resize and centre crop, no normalisation)."""
        steps = [t for t in self.crop_transform.transforms if not isinstance(t, (ToTensor, Normalize))]
        return Compose(steps)(load_image(image))

    @torch.no_grad()
    def encode_image(self, images: ImageInput | Sequence[ImageInput], normalize: bool = True) -> torch.Tensor:
        """Image embeddings [B, D] with the model's standard preprocessing (unit norm by default)."""
        return self.model.encode_image(self.crop(images), normalize=normalize).float()
