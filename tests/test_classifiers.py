"""Grad-ECLIP and its baselines on supervised ViT classifiers (timm), each against an independent
computation of its formula on a tiny random model: a hand-written last block, explicit per-head loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

import gradeclip_lib as gl
from gradeclip_lib.classifiers import loading
from gradeclip_lib.errors import UnsupportedModelError, WeightsUnavailableError

CLASSES = ["ant", "bee", "cat", "dog", "eel"]


def tiny_classifier(seed: int = 0, **kw) -> gl.Classifier:
    torch.manual_seed(seed)
    options = {"img_size": 32, "patch_size": 8, "num_classes": 5, "embed_dim": 64, "depth": 2, "num_heads": 4,
               "dynamic_img_size": True, **kw}
    model = VisionTransformer(**options)
    with torch.no_grad():  # peaked attention, as in conftest's tiny CLIP
        for name, p in model.named_parameters():
            if "qkv.weight" in name:
                p.normal_(0, 2.0 / p.shape[-1] ** 0.5)
    return gl.Classifier(model, CLASSES, name="tiny-vit")


@pytest.fixture(scope="module")
def classifier():
    return tiny_classifier()


def reference(classifier, pixels, target, probability=False):
    """Grad-ECLIP by hand: the last block rewritten with explicit attention, autograd for w."""
    m = classifier.model
    x = m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(pixels))))
    for block in m.blocks[:-1]:
        x = block(x)
    block = m.blocks[-1]
    heads, d = block.attn.num_heads, x.shape[-1] // block.attn.num_heads
    qkv = block.attn.qkv(block.norm1(x)).reshape(1, -1, 3, heads, d)
    q, k, v = qkv[0, :, 0], qkv[0, :, 1], qkv[0, :, 2]  # [N, H, d]
    o = torch.empty(q.shape[0], heads * d)
    for h in range(heads):
        att = (q[:, h] @ k[:, h].T / math.sqrt(d)).softmax(-1)
        o[:, h * d : (h + 1) * d] = att @ v[:, h]
    o = o.detach().requires_grad_(True)
    y = x + block.ls1(block.attn.proj(o[None]))
    y = y + block.ls2(block.mlp(block.norm2(y)))
    logits = m.head(m.fc_norm(m.norm(y)[:, 0]))[0]
    score = logits.softmax(-1)[target] if probability else logits[target]
    (w,) = torch.autograd.grad(score, o)
    w = w[0]
    n = q.shape[0] - 1
    emap = torch.zeros(n)
    for h in range(heads):
        cos = torch.stack([F.cosine_similarity(q[0, h], k[1 + i, h], dim=0) for i in range(n)])
        lam = (cos - cos.min()) / (cos.max() - cos.min())
        chans = slice(h * d, (h + 1) * d)
        emap += (w[chans] * v[1:, h]).sum(-1).detach() * lam.detach()
    return F.relu(emap), score.item()


@pytest.mark.parametrize("probability", [False, True])
def test_grad_eclip_on_a_classifier_matches_a_hand_written_last_block(classifier, images, probability):
    exp = gl.explain(classifier, images, targets=["bee", 3, "eel"], probability=probability)
    for i, (image, target) in enumerate(zip(images, [1, 3, 4])):
        pixels = torch.stack(gl.images.prepare([image], 8, classifier.mean, classifier.std)[0])
        expected, score = reference(classifier, pixels, target, probability)
        grid = (pixels.shape[-2] // 8, pixels.shape[-1] // 8)
        assert exp.maps[i].shape == grid  # non-square images keep their shape
        assert torch.allclose(exp.maps[i].flatten(), expected, atol=1e-5)
        assert exp.scores[i] == pytest.approx(score, abs=1e-5)


def test_scores_are_the_models_own_outputs_and_batching_changes_nothing(classifier, images):
    same = [images[0], images[1]]  # one size: one batch
    together = gl.explain(classifier, same, targets=[0, 2])
    alone = [gl.explain(classifier, im, targets=t) for im, t in zip(same, [0, 2])]
    for i, one in enumerate(alone):
        assert torch.allclose(together.maps[i], one.maps[0], atol=1e-6)
    pixels = torch.stack(gl.images.prepare(same, 8, classifier.mean, classifier.std)[0])
    logits = classifier.model(pixels)
    assert torch.allclose(together.scores, logits[[0, 1], [0, 2]], atol=1e-5)
    crop = gl.explain(classifier, images[2], targets="cat", preprocess="crop")
    assert crop.scores[0] == pytest.approx(float(classifier.logits(images[2])[0, 2]), abs=1e-5)


def test_baselines_against_their_formulas(classifier, images):
    image = images[2]
    pixels = torch.stack(gl.images.prepare([image], 8, classifier.mean, classifier.std)[0])
    m = classifier.model
    x = m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(pixels))))
    for block in m.blocks[:-1]:
        x = block(x)
    block = m.blocks[-1]
    heads = block.attn.num_heads
    q, k, _ = block.attn.qkv(block.norm1(x)).reshape(1, x.shape[1], 3, heads, -1)[0].unbind(1)
    att = torch.stack([(q[0, h] @ k[:, h].T / math.sqrt(q.shape[-1])).softmax(-1) for h in range(heads)])
    sa = gl.explain(classifier, image, targets=1, method="self_attention").maps[0]
    assert torch.allclose(sa.flatten(), att[:, 1:].mean(0), atol=1e-5)
    leaf = x.detach().requires_grad_(True)
    logit = m.forward_head(m.norm(block(leaf)))[0, 1]
    (grad,) = torch.autograd.grad(logit, leaf)
    cam = F.relu((grad[0, 1:].mean(0) * leaf[0, 1:]).sum(-1)).detach()
    gc = gl.explain(classifier, image, targets=1, method="grad_cam").maps[0]
    assert torch.allclose(gc.flatten(), cam, atol=1e-5)
    a, b = (gl.explain(classifier, [image, image], targets=[1, 1], method="random", seed=s).maps for s in (3, 3))
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def legrad_reference(classifier, pixels, target, layer_index, probability=False):
    """LeGrad by hand: every block rewritten with its attention probabilities materialised, the head on each
    explained block's output, autograd with respect to the probabilities."""
    m = classifier.model
    x = m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(pixels))))
    first = layer_index % len(m.blocks)
    total = 0
    for i, block in enumerate(m.blocks):
        heads = block.attn.num_heads
        q, k, v = block.attn.qkv(block.norm1(x)).reshape(x.shape[0], x.shape[1], 3, heads, -1).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)  # [B, H, N, N]
        o = (att @ v).transpose(1, 2).reshape(x.shape)
        x = x + block.ls1(block.attn.proj(o))
        x = x + block.ls2(block.mlp(block.norm2(x)))
        if i >= first:
            logits = m.forward_head(m.norm(x))[0]
            score = logits.softmax(-1)[target] if probability else logits[target]
            (grad,) = torch.autograd.grad(score, att, retain_graph=True)
            total = total + grad.clamp(min=0).mean(1).mean(1)[0, 1:]
    return ((total - total.min()) / (total.max() - total.min())).detach()


@pytest.mark.parametrize("layer_index, probability", [(-2, False), (0, True)])
def test_legrad_on_a_classifier_matches_a_hand_written_forward(classifier, images, layer_index, probability):
    exp = gl.explain(classifier, images, targets=["bee", 3, "eel"], method="legrad", layer_index=layer_index,
                     probability=probability)
    for i, (image, target) in enumerate(zip(images, [1, 3, 4])):
        pixels = torch.stack(gl.images.prepare([image], 8, classifier.mean, classifier.std)[0]).requires_grad_(True)
        expected = legrad_reference(classifier, pixels, target, layer_index, probability)
        assert exp.maps[i].shape == (pixels.shape[-2] // 8, pixels.shape[-1] // 8)
        torch.testing.assert_close(exp.maps[i].flatten(), expected, rtol=1e-4, atol=1e-5)


def test_targets_and_models_are_checked(classifier, images):
    with pytest.raises(ValueError, match="not a class"):
        gl.explain(classifier, images[0], targets="cow")
    with pytest.raises(ValueError, match="out of range"):
        gl.explain(classifier, images[0], targets=9)
    with pytest.raises(UnsupportedModelError, match="timm ViT classifier.*: grad_cam, grad_eclip, legrad, random"):
        gl.explain(classifier, images[0], targets=0, method="game")
    with pytest.raises(UnsupportedModelError, match="global_pool"):
        tiny_classifier(global_pool="avg", class_token=False)
    fixed = tiny_classifier(dynamic_img_size=False)
    with pytest.raises(UnsupportedModelError, match="dynamic_img_size"):
        gl.explain(fixed, images[0], targets=0)
    assert gl.explain(fixed, images[0], targets=0, preprocess="crop").maps.shape == (1, 4, 4)


def test_load_classifier_never_falls_back_to_random_weights(monkeypatch):
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(loading, "_cached", lambda name: False)
    with pytest.raises(WeightsUnavailableError, match="pretrained=None"):
        gl.load_classifier("vit_tiny_patch16_224")
    random = gl.load_classifier("vit_tiny_patch16_224", pretrained=None)
    assert random.pretrained is None and random.class_names[1].startswith("goldfish")
    assert random.model.dynamic_img_size
    with pytest.raises(WeightsUnavailableError, match="no weights file"):
        gl.load_classifier("vit_tiny_patch16_224", pretrained="/nowhere/weights.safetensors")


# ---------------------------------------------------------------- the ShapesWorld classifier
def test_single_object_labels_name_the_scenes_object():
    from gradeclip_lib.shapesworld.train_classifier import CLASSES, single_object_labels
    from gradeclip_lib.synthetic.data import object_bits

    scenes = gl.synthetic.make_scenes(40, seed=1, n_objects=1, size=32)
    labels = single_object_labels(torch.tensor([object_bits(s.objects) for s in scenes]))
    assert [CLASSES[i] for i in labels] == [f"{s.objects[0].colour} {s.objects[0].shape}" for s in scenes]
    two = gl.synthetic.make_scenes(1, seed=1, n_objects=2, size=32)[0]
    with pytest.raises(ValueError, match="exactly one object"):
        single_object_labels(torch.tensor([object_bits(two.objects)]))


def test_a_short_training_saves_a_classifier_that_loads_as_trained(tmp_path):
    from gradeclip_lib.shapesworld.train_classifier import CLASSES, train_shapes_classifier

    trained = train_shapes_classifier(tmp_path, steps=50, batch_size=16, scenes=200, workers=1, progress=False)
    loaded = gl.load_classifier("shapes", pretrained=tmp_path)
    assert loaded.class_names == CLASSES and trained.class_names == CLASSES
    history = __import__("json").loads((tmp_path / "history.json").read_text())
    assert history["step"] == [50] and len(history["accuracy"]) == 3
    image = gl.synthetic.make_scenes(1, seed=3, n_objects=1, size=64)[0].image
    assert torch.allclose(loaded.logits(image), trained.logits(image))
    assert loaded.crop(image).shape == (1, 3, 64, 64)  # its own size, no 224 crop
