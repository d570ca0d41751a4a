"""open_clip's timm towers: SigLIP (a MAP head: the explained layer is its pooling attention, the probe the
readout query) and EVA-02 (the last block's attention at the class token, q and k after the rotary
embedding). Both explain the cosine with a text embedding; SigLIP also its sigmoid logit or probability."""

from __future__ import annotations

import torch

from ..models.timm_passes import (
    EvaRecorder,
    PoolRecorder,
    eva_blocks,
    eva_readout,
    pool_readout,
    pooled_embedding,
    pooled_keys,
    run_trunk_blocks,
    tower_embedding,
    trunk_input,
    trunk_tokens,
)
from .clip import ClipAdapter
from .protocol import ExplainedLayer
from .targets import SIGLIP_SCORES, CosineTarget, SigmoidTarget


class TimmClipAdapter(ClipAdapter):
    """What the two timm towers share: the features are the tower's own output."""

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.visual(pixels.to(self.model.dtype))


class SigLipAdapter(TimmClipAdapter):
    """A `Clip` with a SigLIP tower: Grad-ECLIP on the MAP head's pooling attention. The probe is the readout
    query, the trunk's last tokens (after its final norm) the keys and values; the channel weights are the
    gradient at the pooling attention's output before its projection; the head's MLP and norm lie after it,
    as ln_post and proj lie after CLIP's last attention."""

    family = "clip_siglip"
    description = "SigLIP (open_clip timm tower with a MAP head)"

    def target(self, targets: torch.Tensor, score: str = "cosine") -> CosineTarget:
        """``score``: "cosine" (default), SigLIP's sigmoid "logit" exp(logit_scale) cos + logit_bias, or its
        "probability" sigmoid(logit). The three rise and fall together, so for one pair they give maps of the
        same shape at different scales (Grad-ECLIP's ReLU keeps the sign of w, scaled by a positive factor)."""
        if score not in SIGLIP_SCORES:
            raise ValueError(f"score must be one of {SIGLIP_SCORES}, got {score!r}")
        if score == "cosine":
            return CosineTarget(targets)
        model = self.model.model
        return SigmoidTarget(targets, model.logit_scale.exp(), model.logit_bias, probability=score == "probability")

    def explained_layer(self, pixels: torch.Tensor, index: torch.Tensor, mode: str = "forward",
                        grad: bool = True) -> ExplainedLayer:
        self.check_mode(mode)
        visual = self.model.visual
        with torch.no_grad():
            tokens = trunk_tokens(visual, pixels)[index]  # once per image; the graph starts after the trunk
        with torch.set_grad_enabled(grad), PoolRecorder(visual.trunk.attn_pool, leaf=grad) as pool:
            features = pooled_embedding(visual, tokens)
        return ExplainedLayer(pool.q.float(), pool.k.float(), pool.v.transpose(1, 2).flatten(2).float(),
                              readout=0, patches=pooled_keys(visual), grid=self.grid(pixels), features=features,
                              output=pool.o, readout_features=pool_readout(visual))


class EvaAdapter(TimmClipAdapter):
    """A `Clip` with an EVA-02 tower: Grad-ECLIP on the last block's attention at the class token. q and k
    are taken after the rotary embedding (as the attention uses them); the channel weights are the gradient
    at the attention output before its inner norm and projection."""

    family = "clip_eva"
    description = "EVA-02 CLIP (open_clip timm tower)"

    def explained_layer(self, pixels: torch.Tensor, index: torch.Tensor, mode: str = "forward",
                        grad: bool = True) -> ExplainedLayer:
        self.check_mode(mode)
        visual = self.model.visual
        blocks = eva_blocks(visual)
        with torch.no_grad():
            x, rope = trunk_input(visual, pixels)
            x = run_trunk_blocks(blocks[:-1], x, rope)[index]
        with torch.set_grad_enabled(grad), EvaRecorder(blocks[-1:], leaf=grad) as run:
            features = tower_embedding(visual, run_trunk_blocks(blocks[-1:], x, rope))
        q, k, v = run.qkv(0)
        npt = visual.trunk.num_prefix_tokens
        return ExplainedLayer(q.float(), k.float(), v.transpose(1, 2).flatten(2).float(), readout=0,
                              patches=slice(npt, None), grid=self.grid(pixels), features=features,
                              output=run.o[0], readout_features=eva_readout(visual, x, run.inputs[0][0]))
