"""A ShapesWorld SigLIP started from a ShapesWorld CLIP: each carried-over part computes what the CLIP's did."""

from __future__ import annotations

import pytest
import torch

from gradeclip_lib.models.shapes import build_model, default_config
from gradeclip_lib.models.shapes_transfer import start_from_clip


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    clip, siglip = build_model(default_config("small")), build_model(default_config("siglip"))
    fresh = start_from_clip(siglip, clip)
    return clip.eval(), siglip.eval(), fresh


def test_each_image_block_computes_the_clips_block(pair):
    clip, siglip, _ = pair
    tokens = torch.randn(3, 64, 128)
    blocks, resblocks = siglip.visual.trunk.blocks, clip.visual.transformer.resblocks
    assert len(blocks) == len(resblocks) == 4
    close = {"atol": 1e-4, "rtol": 1e-4}  # timm's norms divide by sqrt(var + 1e-6), open_clip's by sqrt(var + 1e-5)
    with torch.no_grad():
        for ours, theirs in zip(blocks, resblocks):
            torch.testing.assert_close(ours(tokens), theirs(tokens), **close)
        torch.testing.assert_close(siglip.visual.trunk.norm(tokens), clip.visual.ln_post(tokens), **close)


def test_patches_and_positions_are_the_clips_without_its_class_token(pair):
    clip, siglip, _ = pair
    pixels = torch.randn(2, 3, 64, 64)
    trunk = siglip.visual.trunk
    with torch.no_grad():
        ours = trunk._pos_embed(trunk.patch_embed(pixels))
        conv = clip.visual.conv1(pixels).flatten(2).transpose(1, 2)
        theirs = conv + clip.visual.positional_embedding[1:]
    torch.testing.assert_close(ours, theirs)


def test_the_text_tower_gives_the_clips_features_before_its_projection(pair):
    clip, siglip, _ = pair
    ids = torch.randint(1, 20, (4, 32))
    ids[:, -1] = 0
    seen = []
    hooks = [m.ln_final.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in (clip, siglip)]
    with torch.no_grad():
        clip.encode_text(ids), siglip.encode_text(ids)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(seen[1], seen[0])


def test_only_what_has_no_counterpart_starts_fresh(pair):
    clip, siglip, fresh = pair
    assert {name.split(".")[2] if name.startswith("visual.") else name for name in fresh} == {
        "attn_pool", "text_projection", "logit_scale", "logit_bias"}
    before = {k: v.clone() for k, v in build_model(default_config("siglip")).state_dict().items()}
    assert not torch.equal(before["visual.trunk.blocks.0.attn.qkv.weight"],
                           siglip.state_dict()["visual.trunk.blocks.0.attn.qkv.weight"])


def test_models_of_other_widths_are_refused():
    clip, siglip = build_model(default_config("base")), build_model(default_config("siglip"))
    with pytest.raises(ValueError, match="widths or depths differ"):
        start_from_clip(siglip, clip)
    with pytest.raises(ValueError, match="ViT tower"):
        start_from_clip(siglip, build_model(default_config("resnet")))
