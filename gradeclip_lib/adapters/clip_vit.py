"""open_clip CLIP with a ViT image tower: the last block's attention, captured by hooks (`capture`) in the
forward mode (the model's own forward), or recomputed with one head over the full width as the authors' code
does (paper mode)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..capture import Capture
from ..models.clip import Clip
from ..models.passes import token_grid, vision_trunk
from ..models.single_head import single_head_block
from ..models.towers import run_blocks, vision_embedding, vision_tokens
from .clip import ClipAdapter
from .protocol import ExplainedLayer


def class_token_readout(clip: Clip, x_in: torch.Tensor, tokens: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The image embedding [B, E] as a function of the class token's attention output after out_proj
    [B, D], everything else held at its value: the last block's residual and MLP on the class token
    (``x_in``: the block's input tokens), then the model's own pooling of ``tokens`` (the block's output,
    whose class row is replaced) and projection. Patch tokens do not depend on the class token's output."""
    block, visual = clip.vision_blocks[-1], clip.visual
    x_cls, rest = x_in[:, 0], tokens[:, 1:]
    class_token_only = getattr(visual, "attn_pool", None) is None and getattr(visual, "pool_type", "tok") == "tok"

    def embedding(out_cls: torch.Tensor) -> torch.Tensor:
        y = x_cls + block.ls_1(out_cls)
        y = y + block.ls_2(block.mlp(block.ln_2(y)))
        if class_token_only:  # the usual CLIP: ln_post and proj of the class token alone, not of every token
            y = visual.ln_post(y)
            return y @ visual.proj if visual.proj is not None else y
        return vision_embedding(visual, torch.cat([y[:, None], rest], dim=1))

    return embedding


class ViTClipAdapter(ClipAdapter):
    """A `Clip` whose image tower is a ViT: the last block explained at the class token."""

    family = "clip_vit"
    description = "CLIP with a ViT image tower"
    modes = ("forward", "paper")

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        clip = self.model
        with torch.no_grad():
            return vision_embedding(clip.visual, run_blocks(clip.vision_blocks, vision_tokens(clip.visual, pixels)))

    def explained_layer(self, pixels: torch.Tensor, index: torch.Tensor, mode: str = "forward",
                        grad: bool = True) -> ExplainedLayer:
        mode = self.check_mode(mode)
        clip = self.model
        blocks = clip.vision_blocks
        x = vision_trunk(clip, pixels, index, len(blocks) - 1)
        attn = blocks[-1].attn
        if mode == "forward":
            with torch.set_grad_enabled(grad), Capture(blocks[-1:], leaf=grad) as cap:
                tokens = run_blocks(blocks[-1:], x)
                features = vision_embedding(clip.visual, tokens)
            record = cap.records[0]
            q, k, v = record.qkv()
            output, projection = record.out, attn.out_proj.weight
            q, k = record.split_heads(q), record.split_heads(k)
            readout = class_token_readout(clip, x, tokens)
        else:  # the authors' recomputed block: one head, q and k through out_proj for the spatial weight
            with torch.set_grad_enabled(grad):
                tokens, step = single_head_block(blocks[-1], x.detach().requires_grad_(grad))
                features = vision_embedding(clip.visual, tokens)
            q, k, v = step.q_out[:, None].float(), step.k_out[:, None].float(), step.v.float()
            output, projection = step.o, None
            through_out_proj = class_token_readout(clip, x, tokens)

            def readout(o_cls: torch.Tensor) -> torch.Tensor:
                return through_out_proj(F.linear(o_cls, attn.out_proj.weight, attn.out_proj.bias))

        return ExplainedLayer(q.detach(), k.detach(), v.detach(), readout=0, patches=slice(1, None),
                              grid=token_grid(clip, pixels), features=features, output=output,
                              projection=projection, readout_features=readout)
