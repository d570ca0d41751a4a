"""`Blip`: a Hugging Face BLIP retrieval model with its tokenizer and preprocessing, in the shape
`gl.explain` expects of a model (patch size, mean and std, the standard resize, device and dtype)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import Compose, InterpolationMode, Normalize, Resize, ToTensor

from ..errors import TextTooLongError, UnsupportedModelError
from ..models.wrapped import WrappedModel
from ..texts import as_text_list

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # BLIP's image processor normalises as CLIP does
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def itm_head_logits(model: nn.Module, ids: torch.Tensor, image: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """ITM logits [B, 2] (no match, match) of a ``BlipForImageTextRetrieval``: the text encoder on token ids
    [B, L] with cross-attention into image tokens [B, 1+N, D], its class token through ``itm_head``."""
    out = model.text_encoder(input_ids=ids, attention_mask=(ids != pad_id).long(), encoder_hidden_states=image,
                             encoder_attention_mask=torch.ones(image.shape[:2], dtype=torch.long, device=image.device))
    return model.itm_head(out.last_hidden_state[:, 0]).float()


class Blip(WrappedModel):
    """A ``BlipForImageTextRetrieval`` in eval mode with frozen weights, and its (BERT) tokenizer.

    ``mean``/``std`` and ``image_size`` are those of its image processor (BLIP resizes the whole image
    to a square, ``preprocess="crop"``); keep-size inputs interpolate the positional embeddings.
    """

    family = "blip"  # its adapter and methods in the registry

    def __init__(self, model: nn.Module, tokenizer, name: str = "blip", pretrained: str | None = None,
                 mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD,
                 image_size: int | None = None) -> None:
        from transformers import BlipForImageTextRetrieval

        if not isinstance(model, BlipForImageTextRetrieval):
            raise UnsupportedModelError(
                f"{name}: {type(model).__name__} is not a BlipForImageTextRetrieval (the BLIP model with ITC "
                "and ITM heads, e.g. 'Salesforce/blip-itm-base-coco').")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name, self.pretrained = name, pretrained
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_size = int(image_size or model.config.vision_config.image_size)
        self.crop_transform = Compose([
            Resize((self.image_size, self.image_size), interpolation=InterpolationMode.BICUBIC),
            ToTensor(), Normalize(self.mean, self.std)])

    @property
    def patch_size(self) -> int:
        return int(self.model.config.vision_config.patch_size)

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Token ids [T, L], padded with the pad id (the attention mask is ``ids != pad_id``); a text longer
        than the text encoder's positions raises instead of being cut."""
        texts = as_text_list(texts)
        ids = self.tokenizer(texts, padding=True, return_tensors="pt")["input_ids"]
        limit = self.model.config.text_config.max_position_embeddings
        if ids.shape[1] > limit:
            raise TextTooLongError(f"a text has {ids.shape[1]} tokens, more than BLIP's {limit}; shorten it.")
        return ids.to(self.device)

    def text_features(self, ids: torch.Tensor) -> torch.Tensor:
        """Unit ITC text features [T, E]: the text encoder alone (no image), class token, ``text_proj``."""
        out = self.model.text_encoder(input_ids=ids, attention_mask=(ids != self.pad_id).long())
        return F.normalize(self.model.text_proj(out.last_hidden_state[:, 0]).float(), dim=-1)
