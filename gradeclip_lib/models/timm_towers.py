"""open_clip's timm image towers (`TimmModel`) that this library explains: SigLIP's ViT, pooled by an
attention-pooling ("MAP") head whose learned probe attends to every patch, and EVA-02's `Eva`, pooled at its
class token (rotary embeddings on q and k). What the `Clip` wrapper and the two adapters need of them: which
kind a tower is, inputs of any size (timm's dynamic image size), and small towers built from a config dict
(open_clip's `TimmModel` takes a timm model name only, not widths)."""

from __future__ import annotations

import torch
from open_clip.timm_model import TimmModel
from timm.layers import AttentionPoolLatent, Format
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..errors import UnsupportedModelError

TIMM_KINDS = ("siglip", "eva")  # a MAP-pooled timm ViT, an Eva pooled at its class token


def timm_kind(visual: nn.Module, name: str = "model") -> str | None:
    """"siglip" or "eva" for an open_clip timm tower this library explains, None for a tower that is not a
    `TimmModel`; `UnsupportedModelError` for another timm trunk."""
    if not isinstance(visual, TimmModel):
        return None
    trunk = visual.trunk
    if isinstance(trunk, Eva):
        if trunk.cls_token is None or trunk.global_pool != "token":
            raise UnsupportedModelError(f"{name}: this Eva tower pools by {trunk.global_pool!r}; Grad-ECLIP reads "
                                        "the class token's row, so it needs global_pool='token' (EVA-02 CLIP).")
        return "eva"
    if isinstance(trunk, VisionTransformer) and isinstance(getattr(trunk, "attn_pool", None), AttentionPoolLatent):
        if trunk.attn_pool.latent_len != 1:
            raise UnsupportedModelError(f"{name}: the attention pool has {trunk.attn_pool.latent_len} probes; "
                                        "Grad-ECLIP explains a pool with one (SigLIP's MAP head).")
        return "siglip"
    raise UnsupportedModelError(f"{name}: the timm image tower is {type(trunk).__name__} pooled by "
                                f"{getattr(trunk, 'global_pool', '?')!r}; this library explains SigLIP's MAP-pooled "
                                "ViT and EVA-02's Eva (e.g. 'ViT-B-16-SigLIP2', 'EVA02-B-16').")


def allow_any_size(trunk: VisionTransformer | Eva) -> None:
    """Let the trunk take inputs of any size whose sides are multiples of the patch (timm's dynamic image
    size: positional embeddings resampled, rotary embeddings made for the grid). At the training size the
    forward is unchanged. Changes ``trunk`` in place, as the authors of LeGrad do."""
    trunk.dynamic_img_size = True
    embed = trunk.patch_embed
    embed.strict_img_size, embed.flatten, embed.output_fmt = False, False, Format.NHWC
    rope = getattr(trunk, "rope", None)
    if rope is not None and hasattr(rope, "_use_cached_embed"):  # Eva built for one grid caches its rotary
        rope._use_cached_embed = False  # embeddings; rebuilt from its bands they follow each input's grid


def patch_side(visual: TimmModel) -> int:
    """The side of the tower's square patches, in pixels."""
    ph, pw = visual.trunk.patch_embed.patch_size
    if ph != pw:
        raise UnsupportedModelError(f"non-square patches {ph}x{pw} are not supported.")
    return int(ph)


def output_width(visual: TimmModel) -> int:
    """The width of the tower's image embedding: its head's projection, else the trunk's classifier, else the
    trunk's features."""
    linear = [m for m in visual.head.modules() if isinstance(m, nn.Linear)]
    if linear:
        return int(linear[-1].out_features)
    return int(visual.trunk.num_classes or visual.trunk.num_features)


def timm_tower(trunk: nn.Module, image_size: int) -> TimmModel:
    """An open_clip `TimmModel` around a timm trunk built here (no projection after it: the trunk's own head,
    if any, makes the embedding). `TimmModel.__init__` builds trunks by timm model name only."""
    tower = TimmModel.__new__(TimmModel)
    nn.Module.__init__(tower)
    tower.image_size = (image_size, image_size)
    tower.trunk = trunk
    tower.head = nn.Sequential()
    return tower


def build_trunk(cfg: dict) -> VisionTransformer | Eva:
    """A timm trunk from a tower config: ``kind`` "siglip" (a ViT with a MAP head, no class token, the
    features unprojected as open_clip's SigLIP) or "eva" (an EVA-02 CLIP Eva: separate q, k, v projections,
    SwiGLU, rotary embeddings, inner attention norm, a linear head to ``embed_dim``), and the widths."""
    common = {"img_size": cfg["image_size"], "patch_size": cfg["patch_size"], "embed_dim": cfg["width"],
              "depth": cfg["layers"], "num_heads": cfg["heads"]}
    if cfg["kind"] == "siglip":
        return VisionTransformer(**common, class_token=False, global_pool="map", num_classes=0,
                                 mlp_ratio=cfg.get("mlp_ratio", 4.0))
    if cfg["kind"] == "eva":
        grid = cfg["image_size"] // cfg["patch_size"]
        return Eva(**common, qkv_fused=False, mlp_ratio=cfg.get("mlp_ratio", 4 * 2 / 3), swiglu_mlp=True,
                   scale_mlp=True, scale_attn_inner=True, use_rot_pos_emb=True, ref_feat_shape=(grid, grid),
                   global_pool="token", num_classes=cfg["embed_dim"])
    raise ValueError(f"unknown timm tower kind {cfg['kind']!r}; known: {', '.join(TIMM_KINDS)}")


def build_timm_tower(cfg: dict) -> TimmModel:
    """`timm_tower` of `build_trunk`: a small SigLIP or EVA image tower from its config dict."""
    return timm_tower(build_trunk(cfg), cfg["image_size"])


def first_weight(module: nn.Module) -> torch.Tensor:
    """The tower's patch-embedding weight (its device and dtype are the tower's)."""
    return module.trunk.patch_embed.proj.weight
