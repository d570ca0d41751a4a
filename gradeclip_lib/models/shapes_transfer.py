"""Start a ShapesWorld SigLIP from a trained ShapesWorld CLIP: its image blocks and text tower carry over.

The two image trunks share their widths and block layout (pre-norm blocks, fused q/k/v in the same order), so
open_clip's ``resblocks`` map one to one onto timm's ``blocks``. What has no counterpart starts fresh: the MAP
head (SigLIP has no class token), the text projection (SigLIP's embedding is the image tower's width) and the
logit scale and bias. open_clip's ``ln_pre`` has no place in a SigLIP tower and is dropped; its ``ln_post``
becomes the trunk's final norm, which the MAP head reads.
"""

from __future__ import annotations

import open_clip
import torch

# timm block part -> open_clip resblock part (weights and biases alike)
_BLOCK_PARTS = {"norm1": "ln_1", "attn.qkv": "attn.in_proj", "attn.proj": "attn.out_proj", "norm2": "ln_2",
                "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def _clip_name(part: str, suffix: str) -> str:
    """open_clip's name for a timm block parameter (``in_proj`` keeps its weight and bias as single tensors)."""
    name = _BLOCK_PARTS[part]
    return f"{name}_{suffix}" if name == "attn.in_proj" else f"{name}.{suffix}"


def transferred_state(siglip: open_clip.CLIP, clip: open_clip.CLIP) -> dict[str, torch.Tensor]:
    """The SigLIP parameters that take a CLIP's values, by the SigLIP's state-dict names."""
    src, dst = clip.state_dict(), siglip.state_dict()
    vis = clip.visual
    if not hasattr(vis, "transformer") or getattr(siglip.visual, "trunk", None) is None:
        raise ValueError("transfer needs a ShapesWorld CLIP with a ViT tower and a SigLIP with a timm trunk")
    out: dict[str, torch.Tensor] = {
        "visual.trunk.patch_embed.proj.weight": src["visual.conv1.weight"],
        "visual.trunk.patch_embed.proj.bias": torch.zeros_like(dst["visual.trunk.patch_embed.proj.bias"]),
        "visual.trunk.pos_embed": src["visual.positional_embedding"][1:].unsqueeze(0),  # without the class token
        "visual.trunk.norm.weight": src["visual.ln_post.weight"],
        "visual.trunk.norm.bias": src["visual.ln_post.bias"],
    }
    for i in range(len(vis.transformer.resblocks)):
        for part in _BLOCK_PARTS:
            for suffix in ("weight", "bias"):
                out[f"visual.trunk.blocks.{i}.{part}.{suffix}"] = \
                    src[f"visual.transformer.resblocks.{i}.{_clip_name(part, suffix)}"]
    out.update({k: v for k, v in src.items()
                if (k.startswith(("transformer.", "token_embedding.", "ln_final.")) or k == "positional_embedding")})
    wrong = [k for k, v in out.items() if k not in dst or dst[k].shape != v.shape]
    if wrong:
        raise ValueError(f"the two models' widths or depths differ at {', '.join(wrong[:4])}")
    return out


def start_from_clip(siglip: open_clip.CLIP, clip: open_clip.CLIP) -> list[str]:
    """Copy a CLIP's image blocks and text tower into ``siglip`` (in place); returns the names left fresh."""
    return siglip.load_state_dict(transferred_state(siglip, clip), strict=False).missing_keys
