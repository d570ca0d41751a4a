"""The exercises' self-checks: each passes on a correct answer (more than one way of writing it), fails
with the hint it names on each typical mistake, and fails with 'no answer yet' on an untouched starter."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import random_image

import gradeclip_lib as gl
from gradeclip_lib.exercises import NOT_ANSWERED, ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09


def fails_with(check, *args, hint: str) -> None:
    with pytest.raises(AssertionError) as err:
        check(*args)
    assert hint in str(err.value), str(err.value)


# ------------------------------------------------------------------------------ chapter 1: attention
def attention(q, k):
    return (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)[:, 0, 1:]


def test_ch01_attention(tiny, images):
    image = images[2]  # not square
    qk = ch01.last_block_qk(tiny, image)
    h, w = qk.grid
    ch01.check_attention(attention(qk.q, qk.k).reshape(-1, h, w), qk, tiny, image)
    # another correct way: einsum on the class token's query alone, flat [H, h*w]
    logits = torch.einsum("hd,hnd->hn", qk.q[:, 0], qk.k) / qk.q.shape[-1] ** 0.5
    ch01.check_attention(logits.softmax(-1)[:, 1:].numpy(), qk, tiny, image)
    scale = math.sqrt(qk.q.shape[-1])
    logits = qk.q @ qk.k.transpose(-1, -2)
    for wrong, hint in [
        (logits.softmax(-1)[:, 0, 1:], "sqrt(d)"),
        ((logits / scale)[:, 0, 1:].softmax(-1), "class token's own key"),
        ((logits / scale).softmax(-2)[:, 0, 1:], "not over the queries"),
        ((logits / scale).softmax(-1)[:, 1:, 0], "row 0"),
        (attention(qk.q, qk.k).reshape(-1, h, w).mean(0), "do not average the heads"),
        ((logits / scale).softmax(-1)[:, 0], "Drop the class token's own column"),
        (None, NOT_ANSWERED),
    ]:
        fails_with(ch01.check_attention, wrong, qk, tiny, image, hint=hint)


# ------------------------------------------------------------------------------ chapter 2: the map
@pytest.fixture
def terms(tiny, images):
    return ch02.map_terms(tiny, images[2], "a red circle")


def minmax(x):
    return (x - x.min()) / (x.max() - x.min())


def grad_eclip_map(w, v, cosine, grid):
    return F.relu((v * w).sum(-1) * minmax(cosine[1:])).reshape(grid)


def test_ch02_map_from_its_terms(tiny, images, terms):
    args = (terms, tiny, images[2], "a red circle")
    ch02.check_map(grad_eclip_map, *args)

    def lambda_first(w, v, cosine, grid):  # another correct order: weight the values, then the product
        lo, hi = cosine[1:].aminmax()
        return F.relu(((cosine[1:] - lo) / (hi - lo))[:, None] * v @ w).reshape(grid).numpy()

    ch02.check_map(lambda_first, *args)
    for wrong, hint in [
        (lambda w, v, c, g: ((v @ w) * minmax(c[1:])).reshape(g), "Apply the ReLU last"),
        (lambda w, v, c, g: F.relu((v @ w) * c[1:]).reshape(g), "Min-max the cosine"),
        (lambda w, v, c, g: (F.relu(v * w).sum(-1) * minmax(c[1:])).reshape(g), "after the sum over channels"),
        (lambda w, v, c, g: F.relu(v @ w).reshape(g), "Multiply by the spatial weight"),
        (lambda w, v, c, g: F.relu(v * w[None]).sum(0), "Sum over the channels"),
        (lambda w, v, c, g: grad_eclip_map(w, v, c, g) * 1.5, "different from the library's result"),
        (lambda w, v, c, g: None, NOT_ANSWERED),
        (None, NOT_ANSWERED),
        (lambda w, v, c, g: w.nope, "raised AttributeError"),
    ]:
        fails_with(ch02.check_map, wrong, *args, hint=hint)

    def whole_range(w, v, cosine, grid):  # min-max over the class token too
        return F.relu((v @ w) * minmax(cosine)[1:]).reshape(grid)

    # where the class token's own cosine lies within the patches' range the slip changes nothing here,
    # so the check moves it out of the range and asks again
    fails_with(ch02.check_map, whole_range, *args, hint="patches only")


# ------------------------------------------------------------------------------ chapter 3: words
def word_weights(evidence):
    kept = F.relu(evidence[1:-1])
    return kept / kept.sum()


def test_ch03_word_weights(tiny, images):
    text = "a photo of a red circle and a blue star"
    words = ch03.word_evidence(tiny, images[0], text)
    assert words.tokens[0] == "<start>" and words.tokens[-1] == "<end>" and len(words.evidence) == len(words.tokens)
    args = (words, tiny, images[0], text)
    ch03.check_word_weights(word_weights, *args)
    ch03.check_word_weights(lambda e: (e[1:-1].clamp_min(0) / e[1:-1].clamp_min(0).sum()).tolist(), *args)
    for wrong, hint in [
        (lambda e: e[1:-1] / e[1:-1].sum(), "ReLU"),
        (lambda e: F.relu(e[1:-1]) / F.relu(e).sum(), "leave the start and end tokens out of the sum"),
        (lambda e: F.relu(e[1:-1]) / F.relu(e[1:-1]).max(), "not their maximum"),
        (lambda e: e[1:-1].softmax(-1), "not from a softmax"),
        (lambda e: F.relu(e) / F.relu(e).sum(), "One weight per word piece"),
        (lambda e: None, NOT_ANSWERED),
    ]:
        fails_with(ch03.check_word_weights, wrong, *args, hint=hint)



@pytest.mark.parametrize("evidence, slip, hint", [
    # the ends carry no positive evidence: normalising every token, then slicing, looks right here
    ([-0.5, 0.2, -0.1, 0.4, 0.3, -0.2], lambda e: (F.relu(e) / F.relu(e).sum())[1:-1], "large positive evidence"),
    # no word piece is negative: forgetting the ReLU looks right here
    ([-0.5, 0.2, 0.1, 0.4, 0.3, -0.2], lambda e: e[1:-1] / e[1:-1].sum(), "strong negative evidence"),
])
def test_ch03_slips_that_one_case_cannot_see_are_caught(monkeypatch, evidence, slip, hint):
    from types import SimpleNamespace

    words = ch03.WordEvidence(["<start>", "a", "red", "circle", "now", "<end>"], torch.tensor(evidence))
    monkeypatch.setattr(ch03, "explain_text", lambda *a: SimpleNamespace(weights=word_weights(words.evidence)))
    ch03.check_word_weights(word_weights, words, None, None, "a red circle now")
    torch.testing.assert_close(slip(words.evidence), word_weights(words.evidence))  # the slip matches here
    fails_with(ch03.check_word_weights, slip, words, None, None, "a red circle now", hint=hint)


# ------------------------------------------------------------------------------ chapter 4: the attention pool
def test_ch04_pool_map(tiny_rn):
    image, text = random_image(96, 160, 4), "a red circle"  # a 3 x 5 grid of cells
    terms = ch04.pool_terms(tiny_rn, image, text)

    def pool_map(w, q, k, v, heads):  # head by head, as the formula reads
        d = len(w) // heads
        out = torch.zeros(len(v))
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            cos = F.cosine_similarity(q[part][None], k[:, part], dim=1)
            lam = (cos - cos.min()) / (cos.max() - cos.min())
            out += (v[:, part] @ w[part]) * lam
        return F.relu(out)

    def pool_map_vectorised(w, q, k, v, heads):
        split = lambda t: t.reshape(*t.shape[:-1], heads, -1)  # noqa: E731
        cos = F.cosine_similarity(split(q)[None], split(k), dim=-1)  # [N, H]
        lam = (cos - cos.amin(0)) / (cos.amax(0) - cos.amin(0))
        return F.relu(((split(v) * split(w)).sum(-1) * lam).sum(-1)).numpy()

    ch04.check_pool_map(pool_map, terms, tiny_rn, image, text)
    ch04.check_pool_map(pool_map_vectorised, terms, tiny_rn, image, text)

    def pool_map_unclipped(w, q, k, v, heads):
        d = len(w) // heads
        out = torch.zeros(len(v))
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            cos = F.cosine_similarity(q[part][None], k[:, part], dim=1)
            out += (v[:, part] @ w[part]) * (cos - cos.min()) / (cos.max() - cos.min())
        return out

    def full_width(w, q, k, v, heads):
        cos = F.cosine_similarity(q[None], k, dim=1)
        return F.relu((v @ w) * (cos - cos.min()) / (cos.max() - cos.min()))

    def softmax_weight(w, q, k, v, heads):
        d = len(w) // heads
        out = torch.zeros(len(v))
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            out += (v[:, part] @ w[part]) * (k[:, part] @ q[part] / d**0.5).softmax(0)
        return F.relu(out)

    assert pool_map_unclipped(terms.w, terms.q, terms.k, terms.v, terms.heads).min() < 0  # the ReLU matters here
    for wrong, hint in [
        (pool_map_unclipped, "Apply the ReLU last"),
        (full_width, "One cosine per head"),
        (softmax_weight, "not the softmax"),
        (None, NOT_ANSWERED),
    ]:
        fails_with(ch04.check_pool_map, wrong, terms, tiny_rn, image, text, hint=hint)


# ------------------------------------------------------------------------------ chapter 5: pointing
def pointing(maps, masks, tolerance):
    hits = []
    for emap, mask in zip(maps, masks):
        y, x = divmod(int(emap.argmax()), emap.shape[1])
        inside = mask.nonzero().float()
        hits.append(bool(torch.cdist(torch.tensor([[float(y), float(x)]]), inside).min() <= tolerance))
    return hits


def pointing_vectorised(maps, masks, tolerance):
    b, h, w = maps.shape
    peak = maps.flatten(1).argmax(1)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    dist2 = (ys[None] - (peak // w)[:, None, None]) ** 2 + (xs[None] - (peak % w)[:, None, None]) ** 2
    return torch.where(masks, dist2.float(), torch.inf).flatten(1).amin(1) <= tolerance**2


def test_ch05_pointing_game():
    ch05.check_pointing_game(pointing)
    ch05.check_pointing_game(pointing_vectorised)
    maps, masks = ch05.pointing_cases()
    hits0 = gl.metrics.pointing_game(maps, masks, 0.0)
    assert hits0.any() and not hits0.all()  # the cases can tell a right function from a constant
    assert not torch.equal(hits0, gl.metrics.pointing_game(maps, masks, 3.0))  # and see the tolerance

    def on_mask_only(maps, masks, tolerance):
        return pointing(maps, masks, 0.0)

    def swapped(maps, masks, tolerance):
        hits = []
        for emap, mask in zip(maps, masks):
            i = int(emap.argmax())
            y, x = i % emap.shape[0], i // emap.shape[0]
            inside = mask.nonzero().float()
            hits.append(bool(torch.cdist(torch.tensor([[float(y), float(x)]]), inside).min() <= tolerance))
        return hits

    for wrong, hint in [
        (lambda m, k, t: pointing(-m, k, t), "minimum"),
        (on_mask_only, "within that many pixels"),
        (swapped, "Rows and columns are swapped"),
        (lambda m, k, t: [True] * len(m), "differ from the library's"),
        (lambda m, k, t: [True], "one hit (True / False) per map"),
        (lambda m, k, t: None, NOT_ANSWERED),
        (lambda m, k, t: m.nonexistent, "raised AttributeError"),
    ]:
        fails_with(ch05.check_pointing_game, wrong, hint=hint)


# ------------------------------------------------------------------------------ chapter 6: text-blind
@pytest.fixture(scope="module")
def shapes():
    return gl.load_clip("shapes")


def test_ch06_text_awareness(shapes):
    scene = gl.synthetic.make_scenes(1, seed=7, n_objects=2)[0]
    phrases = [o.phrase for o in scene.objects]

    def is_text_aware(method):
        exp = gl.explain(shapes, [scene.image, scene.image], phrases, method=method)
        a, b = (m / m.max() for m in exp.maps)
        return bool((a - b).abs().max() > 1e-3)

    ch06.check_text_awareness(is_text_aware)

    def compares_scores(method):
        exp = gl.explain(shapes, [scene.image, scene.image], phrases, method=method)
        return bool(exp.scores[0] != exp.scores[1])

    def one_phrase(method):
        exp = gl.explain(shapes, [scene.image, scene.image], [phrases[0]] * 2, method=method)
        return bool((exp.maps[0] - exp.maps[1]).abs().max() > 1e-3)

    def half_right(method):
        return method in ("grad_eclip", "self_attention")

    for wrong, hint in [
        (compares_scores, "every method text-aware"),
        (one_phrase, "every method text-blind"),
        (half_right, "gets self_attention"),
        (lambda m: None, NOT_ANSWERED),
    ]:
        fails_with(ch06.check_text_awareness, wrong, hint=hint)


# ------------------------------------------------------------------------------ chapter 7: deletion
def deletion(image, saliency, substrate, counts, score):
    order = saliency.flatten().argsort(descending=True)
    curve = []
    for n in counts:
        x = image.reshape(3, -1).clone()
        x[:, order[:n]] = substrate.reshape(3, -1)[:, order[:n]]
        curve.append(score(x.reshape(image.shape)[None])[0])
    return torch.stack(curve)


def deletion_batched(image, saliency, substrate, counts, score):
    rank = saliency.flatten().argsort(descending=True).argsort()
    keep = rank[None] >= torch.tensor(counts)[:, None]  # [C, H*W]
    images = torch.where(keep.reshape(len(counts), 1, *saliency.shape), image, substrate)
    return score(images).tolist()


def test_ch07_deletion_curve():
    ch07.check_deletion_curve(deletion)
    ch07.check_deletion_curve(deletion_batched)

    def insertion(image, saliency, substrate, counts, score):
        rank = saliency.flatten().argsort(descending=True).argsort().reshape(saliency.shape)
        return torch.stack([score(torch.where(rank < n, image, torch.zeros_like(image))) for n in counts])

    for wrong, hint in [
        (lambda i, s, sub, c, f: deletion(i, -s, sub, c, f), "most* salient pixels first"),
        (lambda i, s, sub, c, f: deletion(i, s, torch.zeros_like(sub), c, f), "not black"),
        (insertion, "That is insertion"),
        (lambda *a: ..., NOT_ANSWERED),
        (lambda *a: 1 / 0, "raised ZeroDivisionError"),
    ]:
        fails_with(ch07.check_deletion_curve, wrong, hint=hint)


def test_ch07_phrase_probability_is_the_zero_shot_probability(shapes):
    from torchvision.transforms.functional import to_tensor

    from gradeclip_lib.shapesworld.evaluate import PROMPTS

    scene = gl.synthetic.make_scenes(2, seed=4, n_objects=1, size=64)
    phrase = scene[0].objects[0].phrase
    score = ch07.phrase_probability(shapes, phrase)
    images = torch.stack([to_tensor(s.image) for s in scene])
    f = F.normalize(shapes.encode_image([s.image for s in scene]).float(), dim=-1)
    probs = (shapes.model.logit_scale.exp() * f @ shapes.encode_text(PROMPTS).float().T).softmax(-1)
    torch.testing.assert_close(score(images), probs[:, PROMPTS.index(phrase)], atol=1e-4, rtol=1e-4)
    assert float(score(images[0])) > 0.5 > float(score(torch.zeros_like(images[0])))


# ------------------------------------------------------------------------------ chapter 8: lift
def test_ch08_lift():
    def lift(maps, masks):
        mass = maps.clamp(min=0)
        inside = (mass * masks).sum((1, 2)) / mass.sum((1, 2))
        return inside / masks.float().mean((1, 2))

    def lift_numpy(maps, masks):  # another correct way, returning a list
        out = []
        for m, k in zip(maps.numpy(), masks.numpy()):
            m = m.clip(0)
            out.append(float(m[k].sum() / m.sum() / k.mean()))
        return out

    ch08.check_lift(lift)
    ch08.check_lift(lift_numpy)
    def share(m, k):
        return (m.clamp(min=0) * k).sum((1, 2)) / m.clamp(min=0).sum((1, 2))

    for wrong, hint in [
        (lambda m, k: (m * k).sum((1, 2)) / m.sum((1, 2)) / k.float().mean((1, 2)), "Clamp the map at 0"),
        (share, "divide it by the mask's share"),
        (lambda m, k: share(m, k) / k.sum((1, 2)), "not by its pixel"),
        (lambda m, k: None, NOT_ANSWERED),
        (None, NOT_ANSWERED),
    ]:
        fails_with(ch08.check_lift, wrong, hint=hint)


# ------------------------------------------------------------------------------ chapter 9: region pooling
def test_ch09_region_pooling():
    def pool(dense, maps):
        w = maps.clamp(min=0).flatten(1)
        w = w / w.sum(1, keepdim=True)
        return (w[:, :, None] * dense.flatten(1, 2)).sum(1)

    def pool_einsum(dense, maps):
        w = F.relu(maps)
        return torch.einsum("bhw,bhwe->be", w / w.sum((1, 2), keepdim=True), dense)

    ch09.check_region_pooling(pool)
    ch09.check_region_pooling(pool_einsum)
    for wrong, hint in [
        (lambda d, m: torch.einsum("bhw,bhwe->be", m.clamp(min=0), d), "Normalise each map's weights"),
        (lambda d, m: torch.einsum("bhw,bhwe->be", m / m.sum((1, 2), keepdim=True), d), "Clamp the map at 0"),
        (lambda d, m: d.mean((1, 2)), "mean of all patches"),
        (lambda d, m: ..., NOT_ANSWERED),
    ]:
        fails_with(ch09.check_region_pooling, wrong, hint=hint)
