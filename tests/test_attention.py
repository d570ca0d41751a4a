"""Attention maps recomputed from captured q, k against nn.MultiheadAttention's own weights."""

from __future__ import annotations

import pytest
import torch

import gradeclip_lib as gl
from gradeclip_lib.attention import top_share
from gradeclip_lib.capture import Capture
from gradeclip_lib.models.towers import run_blocks, vision_tokens


def test_recomputed_attention_equals_materialised_weights(tiny, images):
    maps = gl.attention_maps(tiny, images[:2])
    assert maps.shape == (2, 3, 4, 5, 7)
    pixels = torch.stack([tiny.crop(im)[0] for im in images[:2]])  # any size works for this check
    with torch.no_grad(), Capture(tiny.vision_blocks, leaf=False) as cap:
        run_blocks(tiny.vision_blocks, vision_tokens(tiny.visual, pixels))
    cropped = gl.attention_maps(tiny, images[:2], preprocess="crop")
    for layer, record in enumerate(cap.records):
        _, weights = record.block.attn(record.x, record.x, record.x, need_weights=True,
                                       average_attn_weights=False)
        torch.testing.assert_close(record.probs(), weights, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(cropped[:, layer].flatten(2), weights[:, :, 0, 1:], rtol=1e-4, atol=1e-6)


def test_text_attention_respects_the_causal_mask(tiny):
    ids = tiny.tokenize(["a red circle"])
    from gradeclip_lib.models.towers import text_mask, text_tokens

    tower = tiny.text_tower
    x = text_tokens(tower, ids)
    with torch.no_grad(), Capture(tower.blocks, leaf=False) as cap:
        run_blocks(tower.blocks, x, text_mask(tower, ids.shape[1], x.dtype))
    probs = cap.records[-1].probs()
    assert torch.all(probs.triu(1) == 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))


def test_top_share():
    uniform = torch.ones(10, 10)
    assert float(top_share(uniform, 0.05)) == pytest.approx(0.05)
    spike = torch.zeros(10, 10)
    spike[3, 4] = 1.0
    assert float(top_share(spike, 0.05)) == pytest.approx(1.0)


def test_mixed_sizes_are_refused(tiny, images):
    with pytest.raises(ValueError, match="one size"):
        gl.attention_maps(tiny, images)
