"""Grad-ECLIP and the ITM map on BLIP (Hugging Face BlipForImageTextRetrieval), each against an
independent computation on a tiny random model: the last vision layer written out head by head, the
cross-attentions that transformers itself records, the model's own ITC and ITM outputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import random_image
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForImageTextRetrieval,
    BlipImageProcessor,
    BlipProcessor,
)

import gradeclip_lib as gl
from gradeclip_lib.blip import loading
from gradeclip_lib.errors import WeightsUnavailableError
from gradeclip_lib.images import prepare
from gradeclip_lib.methods import BLIP_METHODS

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle", "photo", "of", "dog", "on", "grass"]
TEXTS = ["a red circle", "a photo of a dog on grass"]


def tiny_blip(seed: int = 0) -> gl.Blip:
    torch.manual_seed(seed)
    config = BlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8},
        text_config={"vocab_size": len(WORDS), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "encoder_hidden_size": 32, "max_position_embeddings": 16,
                     "bos_token_id": 2, "sep_token_id": 3},
        image_text_hidden_size=16,
    )
    model = BlipForImageTextRetrieval(config)
    with torch.no_grad():  # BLIP's vision init is 1e-10; peaked attention, so a wrong head or token would show
        for name, p in model.named_parameters():
            if name.endswith(("qkv.weight", "query.weight", "key.weight")):
                p.normal_(0, 1.5 / p.shape[-1] ** 0.5)
            elif "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias") or "embedding" in name:
                p.normal_(0, 0.3)
            elif p.ndim >= 2:
                p.normal_(0, 1.0 / p.shape[-1] ** 0.5)
    return gl.Blip(model, BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}), name="tiny-blip")


@pytest.fixture(scope="module")
def blip():
    return tiny_blip()


def pixels_of(blip, image):
    (pixels,), _ = prepare([image], blip.patch_size, blip.mean, blip.std)
    return pixels[None]


def reference_grad_eclip(blip, image, text):
    """The last vision layer by hand (heads in a loop), w by autograd at its attention output."""
    vision = blip.model.vision_model
    x = vision.embeddings(pixels_of(blip, image), interpolate_pos_encoding=True)
    for layer in vision.encoder.layers[:-1]:
        x = layer(x)
    layer = vision.encoder.layers[-1]
    attn = layer.self_attn
    heads, d = attn.num_heads, attn.head_dim
    q, k, v = attn.qkv(layer.layer_norm1(x))[0].chunk(3, dim=-1)  # [N, D] each, heads side by side
    o = torch.zeros_like(q)
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        o[:, part] = (q[:, part] @ k[:, part].T / math.sqrt(d)).softmax(-1) @ v[:, part]
    o = o.detach().requires_grad_(True)
    y = x[0] + attn.projection(o)
    y = y + layer.mlp(layer.layer_norm2(y))
    image_feat = blip.model.vision_proj(vision.post_layernorm(y)[0])
    ids = blip.tokenize(text)
    text_feat = blip.model.text_proj(blip.model.text_encoder(input_ids=ids).last_hidden_state[0, 0])
    score = F.cosine_similarity(image_feat, text_feat, dim=0)
    (w,) = torch.autograd.grad(score, o)
    n = q.shape[0] - 1
    emap = torch.zeros(n)
    for i in range(n):
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            cos = F.cosine_similarity(q[0, part][None], k[1:, part], dim=1)
            lam = (cos[i] - cos.min()) / (cos.max() - cos.min())
            emap[i] += (w[0, part] * v[1 + i, part]).sum() * lam
    return torch.relu(emap).detach(), score.detach()


def test_grad_eclip_on_itc_matches_a_hand_written_last_layer(blip):
    image = random_image(32, 56, 1)  # a 4 x 7 grid, not the training 4 x 4
    exp = gl.explain(blip, image, TEXTS[1])
    ref, score = reference_grad_eclip(blip, image, TEXTS[1])
    assert exp.maps.shape == (1, 4, 7)
    assert ref.max() > 0 and torch.allclose(exp.maps[0].flatten(), ref, atol=1e-6, rtol=1e-4)
    assert float(exp.scores[0]) == pytest.approx(float(score), abs=1e-6)


def test_itm_map_against_the_cross_attentions_transformers_records(blip):
    image, text = random_image(40, 48, 2), TEXTS[1]
    exp = gl.explain(blip, image, text, method="itm_gradcam", layer=0)
    ids = blip.tokenize(text)
    with torch.enable_grad():
        vision = blip.model.vision_model(pixel_values=pixels_of(blip, image), interpolate_pos_encoding=True)
        image_tokens = vision.last_hidden_state.detach().requires_grad_(True)  # the weights are frozen
        out = blip.model.text_encoder(input_ids=ids, encoder_hidden_states=image_tokens, output_attentions=True)
        logit = blip.model.itm_head(out.last_hidden_state[:, 0])[0, 1]
        (grad,) = torch.autograd.grad(logit, out.cross_attentions[0])
    probs, grad = out.cross_attentions[0][0].detach(), grad[0]  # [H, L, 1 + N]
    words = range(1, ids.shape[1] - 1)  # between [CLS] and [SEP]
    cam = sum((probs[:, t, 1:] * grad[:, t, 1:].clamp(min=0)).mean(0) for t in words) / len(words)
    assert exp.maps.shape == (1, 5, 6) and cam.max() > 0
    assert torch.allclose(exp.maps[0].flatten(), cam.detach(), atol=1e-8, rtol=1e-4)
    assert float(exp.scores[0]) == pytest.approx(float(logit.detach()), abs=1e-5)


def test_scores_are_the_models_own_and_batching_changes_nothing(blip):
    images = [random_image(32, 32, 3), random_image(32, 32, 4), random_image(32, 48, 5)]
    texts = [TEXTS[0], TEXTS[1], TEXTS[1]]
    for method in sorted(BLIP_METHODS):
        options = {"layer": 0} if method == "itm_gradcam" else {}
        batched = gl.explain(blip, images, texts, method=method, **options)
        for p, (image, text, together, score) in enumerate(zip(images, texts, batched.maps, batched.scores)):
            seed = {"seed": p} if method == "random" else {}
            alone = gl.explain(blip, image, text, method=method, **options, **seed)
            assert torch.allclose(alone.maps[0], together, atol=1e-6, rtol=1e-4), method
            assert float(score) == pytest.approx(float(alone.scores[0]), abs=1e-5), method
    # the standard 32 x 32 resize, through the model's own forward (padded texts, attention mask)
    crop = torch.stack(prepare(images[:2], blip.patch_size, blip.mean, blip.std, crop=blip.crop_transform)[0])
    tokens = blip.tokenizer(texts[:2], padding=True, return_tensors="pt")
    itc = blip.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=crop,
                     use_itm_head=False).itm_score.diagonal()
    itm = blip.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=crop).itm_score
    assert torch.allclose(gl.explain(blip, images[:2], texts[:2], preprocess="crop").scores, itc, atol=1e-5)
    ours = gl.explain(blip, images[:2], texts[:2], method="itm_gradcam", layer=0, preprocess="crop").scores
    assert torch.allclose(ours, itm[:, 1], atol=1e-5)
    probability = gl.explain(blip, images[:2], texts[:2], method="itm_gradcam", layer=0, preprocess="crop",
                             probability=True).scores
    assert torch.allclose(probability, itm.softmax(-1)[:, 1], atol=1e-6)


def test_self_attention_is_the_last_layers_class_token_row(blip):
    image = random_image(32, 40, 6)
    exp = gl.explain(blip, image, TEXTS[0], method="self_attention")
    out = blip.model.vision_model(pixel_values=pixels_of(blip, image), interpolate_pos_encoding=True,
                                  output_attentions=True)
    row = out.attentions[-1][0, :, 0, 1:].mean(0)
    assert torch.allclose(exp.maps[0].flatten(), row, atol=1e-6)


def test_bad_requests_say_what_to_do(blip, monkeypatch):
    image = random_image(32, 32, 7)
    with pytest.raises(ValueError, match="itm_gradcam"):
        gl.explain(blip, image, TEXTS[0], method="game")
    with pytest.raises(ValueError, match="layer"):
        gl.explain(blip, image, TEXTS[0], method="itm_gradcam", layer=5)
    with pytest.raises(gl.UnsupportedModelError, match="gl.explain"):
        gl.explain_text(blip, image, TEXTS[0])
    with pytest.raises(gl.TextTooLongError):
        gl.explain(blip, image, " ".join(["dog"] * 20))
    monkeypatch.setattr(loading, "hub_reachable", lambda: False)
    monkeypatch.setattr(loading, "_cached", lambda name: False)
    with pytest.raises(WeightsUnavailableError, match="save_pretrained"):
        gl.load_blip("Salesforce/blip-itm-base-coco")
    with pytest.raises(WeightsUnavailableError, match="pretrained=None"):  # its config is not cached either
        gl.load_blip(pretrained=None)


def test_a_saved_blip_loads_from_its_folder_offline(blip, tmp_path):
    blip.model.save_pretrained(tmp_path)
    images = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=images, tokenizer=blip.tokenizer).save_pretrained(tmp_path)
    loaded = gl.load_blip("tiny", pretrained=tmp_path)
    image = random_image(32, 48, 8)
    assert loaded.image_size == 32 and loaded.mean == pytest.approx(blip.mean)
    assert torch.allclose(gl.explain(loaded, image, TEXTS[0]).maps, gl.explain(blip, image, TEXTS[0]).maps)
    with pytest.raises(WeightsUnavailableError, match="no BLIP model"):
        gl.load_blip("tiny", pretrained=tmp_path / "missing")
