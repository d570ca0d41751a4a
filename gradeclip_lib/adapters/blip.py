"""BLIP image-text retrieval (Hugging Face ``BlipForImageTextRetrieval``, `blip.Blip`): the last vision
layer's attention at the class token; the features are ``vision_proj`` of the class token and a target is
the ITC cosine with the text encoder's class token."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .protocol import Adapter, ExplainedLayer
from .targets import CosineTarget


@dataclass
class VisionPass:
    """One forward of BLIP's vision encoder: image tokens after post_layernorm [B, 1+N, D], q, k, v of the last
    layer [B, 1+N, H, d] (float32), its input [B, 1+N, D] and its attention output before ``projection``
    [B, 1+N, D] (a leaf that requires grad when asked for)."""

    tokens: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    input: torch.Tensor
    o: torch.Tensor


def vision_pass(blip, pixels: torch.Tensor, leaf_o: bool = False) -> VisionPass:
    """The vision encoder on ``pixels`` (positions interpolated to their grid), recording its last layer."""
    layer = blip.model.vision_model.encoder.layers[-1]
    attn = layer.self_attn
    store: dict = {}

    def keep_qkv(_module, _args, out):
        b, n, _ = out.shape
        store["qkv"] = out.detach().float().reshape(b, n, 3, attn.num_heads, -1)

    def keep_o(_module, args):
        store["o"] = args[0].detach().requires_grad_(True) if leaf_o else args[0]
        return (store["o"],) if leaf_o else None

    def keep_input(_module, args):
        store["input"] = args[0]

    handles = [attn.qkv.register_forward_hook(keep_qkv), attn.projection.register_forward_pre_hook(keep_o),
               layer.register_forward_pre_hook(keep_input)]
    try:
        out = blip.model.vision_model(pixel_values=pixels.to(blip.dtype), interpolate_pos_encoding=True)
    finally:
        for handle in handles:
            handle.remove()
    q, k, v = store["qkv"].unbind(2)
    return VisionPass(out.last_hidden_state, q, k, v, store["input"].detach(), store["o"])


def class_token_readout(blip, x_in: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The ITC image features [B, E] as a function of the class token's attention output before
    ``projection`` [B, D], the rest held: the layer's residual and MLP, post_layernorm, vision_proj."""
    vision = blip.model.vision_model
    layer = vision.encoder.layers[-1]

    def features(o_cls: torch.Tensor) -> torch.Tensor:
        y = x_in[:, 0] + layer.self_attn.projection(o_cls)
        y = y + layer.mlp(layer.layer_norm2(y))
        return blip.model.vision_proj(vision.post_layernorm(y))

    return features


class BlipAdapter(Adapter):
    """A BLIP retrieval model, explained on its ITC cosine (itm_gradcam, BLIP's own, explains the ITM head)."""

    family = "blip"
    description = "BLIP retrieval model"

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.model.vision_proj(vision_pass(self.model, pixels).tokens[:, 0])

    def encode_targets(self, targets: str | Sequence[str]) -> torch.Tensor:
        return self.model.tokenize(targets)

    def target(self, targets: torch.Tensor) -> CosineTarget:
        with torch.no_grad():
            return CosineTarget(self.model.text_features(targets))

    def explained_layer(self, pixels: torch.Tensor, index: torch.Tensor, mode: str = "forward",
                        grad: bool = True) -> ExplainedLayer:
        mode = self.check_mode(mode)
        with torch.set_grad_enabled(grad):
            run = vision_pass(self.model, pixels[index], leaf_o=grad)
            features = self.model.model.vision_proj(run.tokens[:, 0])
        b, n, heads, _ = run.v.shape
        return ExplainedLayer(run.q.transpose(1, 2), run.k.transpose(1, 2), run.v.reshape(b, n, -1), readout=0,
                              patches=slice(1, None), grid=self.grid(pixels), features=features, output=run.o,
                              readout_features=class_token_readout(self.model, run.input))
