"""The exercises' self-checks: each says "Correct" (and what it compared) on correct answers written in
several ways, fails with the hint it names on each typical mistake, fails on plausible wrong answers it
does not name (neighbouring quantities: another distance, another normalisation, a window of another
shape, an off-by-one slice) with the first place where the answer differs, catches an answer that
changes its inputs in place, and fails with 'no answer yet' on an untouched starter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fails_with, make_tiny_clip, make_tiny_resnet_clip, random_image, says_correct

import gradeclip_lib as gl
from gradeclip_lib.exercises import NOT_ANSWERED, ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09
from gradeclip_lib.exercises.checking import check_tensor, first_difference

IN_PLACE = "in place"



def ids(cases):
    return [c[0] for c in cases]


# ------------------------------------------------------------------------------ the shared comparison
def test_a_generic_failure_names_the_first_place_and_both_values():
    expected = torch.arange(12.0).reshape(3, 4)
    got = expected.clone()
    got[1, 2] = 0.41
    message = fails_with(check_tensor, got, expected, "Your map", None, 1e-4,
                         lambda i: f"patch ({i[0]}, {i[1]})", "on case 2 (a 3 x 4 grid)", hint="patch (1, 2)")
    assert "Your map on case 2 (a 3 x 4 grid)" in message and "yours 0.41" in message and "the library's 6" in message
    assert "re-read" not in message
    assert first_difference(got, expected) == (1, 2)


@pytest.mark.parametrize("name, transform, hint", [
    ("transposed", lambda e: e.T, "rows and columns are swapped"),
    ("column by column", lambda e: e.flatten().reshape(4, 3).T, "column by column"),
    ("negated", lambda e: -e, "opposite sign"),
    ("scaled", lambda e: 1.5 * e, "times 1.5"),
    ("shifted", lambda e: e + 0.25, "plus 0.25"),
    ("nan", lambda e: torch.where(e > 0.5, e * float("nan"), e), "NaN"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_simple_transformations_of_the_right_result_are_named(name, transform, hint):
    expected = torch.rand(3, 4, generator=torch.Generator().manual_seed(0)) + 0.1
    fails_with(check_tensor, transform(expected), expected, "Your map", hint=hint)


def test_a_transposed_square_grid_is_named_too():
    expected = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(1))  # the chapters' scenes are square
    fails_with(check_tensor, expected.transpose(1, 2), expected, "Your map", hint="rows and columns are swapped")


def test_call_catches_a_changed_input_by_the_students_name_for_it():
    from gradeclip_lib.exercises.checking import call

    def normalise(values, grid):
        values -= values.min()
        return values

    x = torch.randn(5)
    message = fails_with(call, normalise, x, (1, 5), hint="changed its input `values` (the 1st argument) in place")
    assert "work on a copy" in message.lower()
    assert call(lambda a, b: a - a.min(), torch.randn(5), 2).min() == 0  # a new tensor is fine
    fails_with(call, lambda a, b: b.append(1), torch.randn(2), [0], hint="`b` (the 2nd argument)")


# ------------------------------------------------------------------------------ chapter 1: attention
@pytest.fixture(scope="module")
def tiny_clip():
    return make_tiny_clip()


@pytest.fixture(scope="module")
def case01(tiny_clip):
    image = random_image(33, 70, 3)  # a 4 x 9 grid: not square
    return ch01.last_block_qk(tiny_clip, image), tiny_clip, image


def attention(q, k):
    return (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)[:, 0, 1:]


def attention_numpy(q, k):
    q, k = q.numpy().astype(np.float64), k.numpy().astype(np.float64)
    out = []
    for qh, kh in zip(q, k):  # head by head, with an explicit softmax
        logits = kh @ qh[0] / np.sqrt(qh.shape[-1])
        e = np.exp(logits - logits.max())
        out.append((e / e.sum())[1:])
    return np.stack(out)


RIGHT01 = [
    ("matmul, on the grid", lambda q, k, h, w: attention(q, k).reshape(-1, h, w)),
    ("einsum on the class token's query, with a batch axis",
     lambda q, k, h, w: (torch.einsum("hd,hnd->hn", q[:, 0], k) / q.shape[-1] ** 0.5).softmax(-1)[None, :, 1:]
     .reshape(1, -1, h, w).numpy()),
    ("numpy, head by head", lambda q, k, h, w: attention_numpy(q, k).reshape(-1, h, w)),
]


def _logits(q, k):
    return q @ k.transpose(-1, -2)


WRONG01 = [
    ("no scale", lambda q, k, h, w: _logits(q, k).softmax(-1)[:, 0, 1:], "sqrt(d)"),
    ("divided by d", lambda q, k, h, w: (_logits(q, k) / q.shape[-1]).softmax(-1)[:, 0, 1:], "not by d"),
    ("softmax after dropping the class token",
     lambda q, k, h, w: (_logits(q, k) / q.shape[-1] ** 0.5)[:, 0, 1:].softmax(-1), "class token's own key"),
    ("softmax over queries", lambda q, k, h, w: (_logits(q, k) / q.shape[-1] ** 0.5).softmax(-2)[:, 0, 1:],
     "not over the queries"),
    ("column 0", lambda q, k, h, w: (_logits(q, k) / q.shape[-1] ** 0.5).softmax(-1)[:, 1:, 0], "row 0"),
    ("heads averaged", lambda q, k, h, w: attention(q, k).reshape(-1, h, w).mean(0), "do not average the heads"),
    ("class token kept", lambda q, k, h, w: (_logits(q, k) / q.shape[-1] ** 0.5).softmax(-1)[:, 0],
     "Drop the class token's own column"),
    # neighbours it does not name: they fail with the first head and patch that differ
    ("off-by-one slice [:-1]",
     lambda q, k, h, w: (_logits(q, k) / q.shape[-1] ** 0.5).softmax(-1)[:, 0, :-1], "first differs"),
    ("row 1 (the first patch's attention)",
     lambda q, k, h, w: (_logits(q, k) / q.shape[-1] ** 0.5).softmax(-1)[:, 1, 1:], "first differs"),
    ("cosine instead of the dot product",
     lambda q, k, h, w: (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)).softmax(-1)[:, 0, 1:],
     "first differs"),
    ("scaled by sqrt(N)", lambda q, k, h, w: (_logits(q, k) / k.shape[1] ** 0.5).softmax(-1)[:, 0, 1:],
     "first differs"),
    ("laid out column by column", lambda q, k, h, w: attention(q, k).reshape(-1, w, h).transpose(1, 2),
     "column by column"),
    ("the maximum over heads", lambda q, k, h, w: attention(q, k).reshape(-1, h, w).amax(0), "shape"),
    # the right values in another layout: flat, or reshaped to (w, h), which scrambles the image
    ("left flat [heads, N]", lambda q, k, h, w: attention(q, k), "laid out as"),
    ("reshaped to (w, h)", lambda q, k, h, w: attention(q, k).reshape(-1, w, h), "reshape them (row by row)"),
    ("transposed grid", lambda q, k, h, w: attention(q, k).reshape(-1, h, w).transpose(1, 2), "swapped"),
    ("no answer", lambda q, k, h, w: None, NOT_ANSWERED),
]


@pytest.mark.parametrize("name, right", RIGHT01, ids=ids(RIGHT01))
def test_ch01_right_answers_pass(capsys, case01, name, right):
    qk, clip, image = case01
    out = says_correct(capsys, ch01.check_attention, right(qk.q, qk.k, *qk.grid), qk, clip, image)
    assert "4 x 9 grid" in out and "largest difference" in out


@pytest.mark.parametrize("name, wrong, hint", WRONG01, ids=ids(WRONG01))
def test_ch01_wrong_answers_fail(case01, name, wrong, hint):
    qk, clip, image = case01
    message = fails_with(ch01.check_attention, wrong(qk.q, qk.k, *qk.grid), qk, clip, image, hint=hint)
    if hint == "first differs":
        assert "head " in message and "patch (row" in message and "yours" in message


def test_ch01_queries_changed_in_place_are_caught(case01):
    qk, clip, image = case01
    mine = ch01.QueriesKeys(qk.q.clone(), qk.k.clone(), qk.grid)
    q = mine.q
    q /= math.sqrt(q.shape[-1])  # scales the caller's queries
    answer = (q @ mine.k.transpose(-1, -2)).softmax(-1)[:, 0, 1:]  # right values, but qk is now changed
    fails_with(ch01.check_attention, answer, mine, clip, image, hint="changed `qk.q` in place")


# ------------------------------------------------------------------------------ chapter 2: the map
@pytest.fixture(scope="module")
def case02(tiny_clip):
    image = random_image(33, 70, 3)  # a 4 x 9 grid
    return ch02.map_terms(tiny_clip, image, "a red circle"), tiny_clip, image, "a red circle"


def minmax(x):
    return (x - x.min()) / (x.max() - x.min())


def grad_eclip_map(w, v, cosine, grid):
    return F.relu((v * w).sum(-1) * minmax(cosine[1:])).reshape(grid)


def map_loops(w, v, cosine, grid):
    lo, hi = min(cosine[1:].tolist()), max(cosine[1:].tolist())
    out = []
    for i in range(len(v)):
        value = sum(float(w[c]) * float(v[i, c]) for c in range(len(w))) * (float(cosine[i + 1]) - lo) / (hi - lo)
        out.append(max(value, 0.0))
    return torch.tensor(out).reshape(grid)


RIGHT02 = [
    ("the formula", grad_eclip_map),
    ("lambda first", lambda w, v, c, g: F.relu(minmax(c[1:])[:, None] * v @ w).reshape(g).numpy()),
    ("ReLU before the product with lambda (lambda >= 0)",
     lambda w, v, c, g: (F.relu(v @ w) * minmax(c[1:])).reshape(g)),
    ("einsum", lambda w, v, c, g: torch.einsum("nd,d,n->n", v, w, minmax(c[1:])).clamp(min=0).reshape(g)),
    ("numpy", lambda w, v, c, g: np.maximum((v.numpy() @ w.numpy()) * minmax(c[1:]).numpy(), 0).reshape(g)),
    ("loops", map_loops),
]


def _in_place_minmax(w, v, cosine, grid):
    patches = cosine[1:]
    patches -= patches.min()
    patches /= patches.max()
    return F.relu((v @ w) * patches).reshape(grid)


WRONG02 = [
    ("no ReLU", lambda w, v, c, g: ((v @ w) * minmax(c[1:])).reshape(g), "Negative values are left in"),
    ("raw cosine", lambda w, v, c, g: F.relu((v @ w) * c[1:]).reshape(g), "Min-max the cosine"),
    ("cosine over its maximum", lambda w, v, c, g: F.relu((v @ w) * c[1:] / c[1:].max()).reshape(g),
     "subtracts the minimum first"),
    ("softmax weight", lambda w, v, c, g: F.relu((v @ w) * c[1:].softmax(0)).reshape(g), "not a softmax"),
    ("off-by-one slice cosine[:-1]", lambda w, v, c, g: F.relu((v @ w) * minmax(c[:-1])).reshape(g), "cosine[1:]"),
    ("ReLU per channel", lambda w, v, c, g: (F.relu(v * w).sum(-1) * minmax(c[1:])).reshape(g),
     "after the sum over channels"),
    ("no lambda", lambda w, v, c, g: F.relu(v @ w).reshape(g), "Multiply by the spatial weight"),
    ("summed over patches", lambda w, v, c, g: F.relu(v * w[None]).sum(0), "Sum over the channels"),
    ("min-max over every token", lambda w, v, c, g: F.relu((v @ w) * minmax(c)[1:]).reshape(g), "patches only"),
    ("scaled", lambda w, v, c, g: grad_eclip_map(w, v, c, g) * 1.5, "times 1.5"),
    # neighbours it does not name
    ("standardised cosine (another normalisation)",
     lambda w, v, c, g: F.relu((v @ w) * (c[1:] - c[1:].mean()) / c[1:].std()).reshape(g), "first differs"),
    ("lambda squared", lambda w, v, c, g: F.relu((v @ w) * minmax(c[1:]) ** 2).reshape(g), "first differs"),
    ("mean over channels instead of the sum", lambda w, v, c, g: F.relu((v * w).mean(-1) * minmax(c[1:])).reshape(g),
     "times"),
    ("transposed grid", lambda w, v, c, g: grad_eclip_map(w, v, c, g).T, "rows and columns are swapped"),
    ("in-place min-max", _in_place_minmax, "changed its input `cosine`"),
    ("returns None", lambda w, v, c, g: None, NOT_ANSWERED),
    ("untouched starter", None, NOT_ANSWERED),
    ("raises", lambda w, v, c, g: w.nope, "raised AttributeError"),
]


@pytest.mark.parametrize("name, right", RIGHT02, ids=ids(RIGHT02))
def test_ch02_right_answers_pass(capsys, case02, name, right):
    out = says_correct(capsys, ch02.check_map, right, *case02)
    assert "4 x 9 grid" in out and "2 more cases" in out


@pytest.mark.parametrize("name, wrong, hint", WRONG02, ids=ids(WRONG02))
def test_ch02_wrong_answers_fail(case02, name, wrong, hint):
    message = fails_with(ch02.check_map, wrong, *case02, hint=hint)
    if hint == "first differs":
        assert "patch (row" in message and "yours" in message


def test_ch02_the_relu_hint_no_longer_fires_for_a_relu_before_lambda(case02):
    terms = case02[0]
    evidence = terms.v @ terms.w
    assert (evidence < 0).any()  # the ReLU matters on this case
    ch02.check_map(RIGHT02[2][1], *case02)  # ReLU first, then lambda: the same map


# ------------------------------------------------------------------------------ chapter 3: words
@pytest.fixture(scope="module")
def case03(tiny_clip):
    image, text = random_image(40, 56, 1), "a photo of a red circle and a blue star"
    return ch03.word_evidence(tiny_clip, image, text), tiny_clip, image, text


def word_weights(evidence):
    kept = F.relu(evidence[1:-1])
    return kept / kept.sum()


def words_loop(evidence):
    kept = [max(float(x), 0.0) for x in evidence[1:len(evidence) - 1]]
    return [x / sum(kept) for x in kept]


def _clamp_in_place(evidence):
    evidence.clamp_(min=0)
    return evidence[1:-1] / evidence[1:-1].sum()


RIGHT03 = [
    ("relu and sum", word_weights),
    ("clamp, as a list", lambda e: (e[1:-1].clamp_min(0) / e[1:-1].clamp_min(0).sum()).tolist()),
    ("numpy", lambda e: np.clip(e.numpy()[1:-1], 0, None) / np.clip(e.numpy()[1:-1], 0, None).sum()),
    ("loop", words_loop),
]

WRONG03 = [
    ("no ReLU", lambda e: e[1:-1] / e[1:-1].sum(), "ReLU"),
    ("absolute value", lambda e: e[1:-1].abs() / e[1:-1].abs().sum(), "absolute value"),
    ("ends in the sum", lambda e: F.relu(e[1:-1]) / F.relu(e).sum(), "leave the start and end tokens out of the sum"),
    ("over the maximum", lambda e: F.relu(e[1:-1]) / F.relu(e[1:-1]).max(), "not their maximum"),
    ("softmax", lambda e: e[1:-1].softmax(-1), "not from a softmax"),
    ("every token", lambda e: F.relu(e) / F.relu(e).sum(), "One weight per word piece"),
    ("off-by-one slice e[:-2]", lambda e: F.relu(e[:-2]) / F.relu(e[:-2]).sum(), "starts one too early"),
    ("off-by-one slice e[2:]", lambda e: F.relu(e[2:]) / F.relu(e[2:]).sum(), "starts one too late"),
    # neighbours it does not name
    ("squared evidence", lambda e: F.relu(e[1:-1]) ** 2 / (F.relu(e[1:-1]) ** 2).sum(), "first differs"),
    ("min-max", lambda e: minmax(e[1:-1]) / minmax(e[1:-1]).sum(), "first differs"),
    ("sum of the word pieces' evidence, signed",
     lambda e: F.relu(e[1:-1]) / e[1:-1].sum(), "times"),
    ("in-place clamp", _clamp_in_place, IN_PLACE),
    ("returns None", lambda e: None, NOT_ANSWERED),
]


@pytest.mark.parametrize("name, right", RIGHT03, ids=ids(RIGHT03))
def test_ch03_right_answers_pass(capsys, case03, name, right):
    out = says_correct(capsys, ch03.check_word_weights, right, *case03)
    assert "2 cases of the check's own" in out


@pytest.mark.parametrize("name, wrong, hint", WRONG03, ids=ids(WRONG03))
def test_ch03_wrong_answers_fail(case03, name, wrong, hint):
    message = fails_with(ch03.check_word_weights, wrong, *case03, hint=hint)
    if hint == "first differs":
        assert "word piece" in message and "yours" in message


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
@pytest.fixture(scope="module")
def case04():
    clip = make_tiny_resnet_clip()
    image, text = random_image(96, 160, 4), "a red circle"  # a 3 x 5 grid of cells
    return ch04.pool_terms(clip, image, text), clip, image, text


def _heads(t, heads):
    return t.reshape(*t.shape[:-1], heads, -1)


def pool_map(w, q, k, v, heads):  # head by head, as the formula reads
    d = len(w) // heads
    out = torch.zeros(len(v))
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        cos = F.cosine_similarity(q[part][None], k[:, part], dim=1)
        out += (v[:, part] @ w[part]) * (cos - cos.min()) / (cos.max() - cos.min())
    return F.relu(out)


def _head_terms(w, q, k, v, heads):
    cos = F.cosine_similarity(_heads(q, heads)[None], _heads(k, heads), dim=-1)  # [N, H]
    return (_heads(v, heads) * _heads(w, heads)).sum(-1), cos  # evidence per head [N, H], cosine [N, H]


def _per_head_lambda(cos):
    return (cos - cos.amin(0)) / (cos.amax(0) - cos.amin(0))


def pool_map_vectorised(w, q, k, v, heads):
    evidence, cos = _head_terms(w, q, k, v, heads)
    return F.relu((evidence * _per_head_lambda(cos)).sum(-1)).numpy()


def _unclipped(w, q, k, v, heads):
    evidence, cos = _head_terms(w, q, k, v, heads)
    return (evidence * _per_head_lambda(cos)).sum(-1)


def _relu_per_head(w, q, k, v, heads):
    evidence, cos = _head_terms(w, q, k, v, heads)
    return (F.relu(evidence) * _per_head_lambda(cos)).sum(-1)


def _global_minmax(w, q, k, v, heads):
    evidence, cos = _head_terms(w, q, k, v, heads)
    return F.relu((evidence * minmax(cos)).sum(-1))


def _full_width(w, q, k, v, heads):
    cos = F.cosine_similarity(q[None], k, dim=1)
    return F.relu((v @ w) * minmax(cos))


def _softmax_weight(w, q, k, v, heads):
    d = len(w) // heads
    logits = torch.einsum("hd,nhd->nh", _heads(q, heads), _heads(k, heads)) / d**0.5
    return F.relu((_head_terms(w, q, k, v, heads)[0] * logits.softmax(0)).sum(-1))


def _interleaved(w, q, k, v, heads):
    def split(t):
        return t.reshape(*t.shape[:-1], -1, heads).transpose(-1, -2)

    cos = F.cosine_similarity(split(q)[None], split(k), dim=-1)
    return F.relu(((split(v) * split(w)).sum(-1) * _per_head_lambda(cos)).sum(-1))


def _mean_over_heads(w, q, k, v, heads):
    evidence, cos = _head_terms(w, q, k, v, heads)
    return F.relu((evidence * _per_head_lambda(cos)).mean(-1))


def _dot_product_lambda(w, q, k, v, heads):  # another similarity: the dot product, min-maxed
    evidence, _ = _head_terms(w, q, k, v, heads)
    dot = (_heads(q, heads)[None] * _heads(k, heads)).sum(-1)
    return F.relu((evidence * _per_head_lambda(dot)).sum(-1))


def _in_place_w(w, q, k, v, heads):
    w *= 1.0  # harmless arithmetic, but on the caller's tensor: still flagged
    w[0] = 0.0
    return pool_map(w, q, k, v, heads)


RIGHT04 = [("head by head", pool_map), ("vectorised, numpy out", pool_map_vectorised)]
WRONG04 = [
    ("no ReLU", _unclipped, "Negative values are left in"),
    ("ReLU per head", _relu_per_head, "once, on the sum over all heads"),
    ("cosine not min-maxed", lambda w, q, k, v, heads: F.relu((_head_terms(w, q, k, v, heads)[0]
                                                              * _head_terms(w, q, k, v, heads)[1]).sum(-1)),
     "Min-max each head's cosine"),
    ("min-max over all heads at once", _global_minmax, "for each head separately"),
    ("one cosine over the full width", _full_width, "One cosine per head"),
    ("softmax", _softmax_weight, "not the softmax"),
    ("interleaved heads", _interleaved, "not interleaved"),
    ("no lambda", lambda w, q, k, v, heads: F.relu(v @ w), "Multiply by the spatial weight"),
    # neighbours it does not name
    ("mean over heads", _mean_over_heads, "times 0.25"),
    ("dot product instead of the cosine", _dot_product_lambda, "first differs"),
    ("in-place change of w", _in_place_w, "changed its input `w`"),
    ("untouched starter", None, NOT_ANSWERED),
]


@pytest.mark.parametrize("name, right", RIGHT04, ids=ids(RIGHT04))
def test_ch04_right_answers_pass(capsys, case04, name, right):
    assert (_unclipped(*(getattr(case04[0], a) for a in ("w", "q", "k", "v", "heads"))) < 0).any()  # ReLU matters
    assert "3 x 5 grid" in says_correct(capsys, ch04.check_pool_map, right, *case04)


@pytest.mark.parametrize("name, wrong, hint", WRONG04, ids=ids(WRONG04))
def test_ch04_wrong_answers_fail(case04, name, wrong, hint):
    message = fails_with(ch04.check_pool_map, wrong, *case04, hint=hint)
    if hint == "first differs":
        assert "cell " in message and "(row" in message


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


def pointing_numpy(maps, masks, tolerance):
    out = []
    for emap, mask in zip(maps.numpy(), masks.numpy()):
        y, x = np.unravel_index(emap.argmax(), emap.shape)
        ys, xs = np.nonzero(mask)
        out.append(np.hypot(ys - y, xs - x).min() <= tolerance)
    return np.array(out)


def _pointing_metric(distance):
    def game(maps, masks, tolerance):
        hits = []
        for emap, mask in zip(maps, masks):
            y, x = divmod(int(emap.argmax()), emap.shape[1])
            ys, xs = mask.nonzero(as_tuple=True)
            hits.append(bool(distance((ys - y).abs().float(), (xs - x).abs().float()).min() <= tolerance))
        return hits
    return game


def _swapped(maps, masks, tolerance):
    hits = []
    for emap, mask in zip(maps, masks):
        i = int(emap.argmax())
        y, x = i % emap.shape[0], i // emap.shape[0]
        inside = mask.nonzero().float()
        hits.append(bool(torch.cdist(torch.tensor([[float(y), float(x)]]), inside).min() <= tolerance))
    return hits


def _normalised_in_place(maps, masks, tolerance):
    maps -= maps.amin((1, 2), keepdim=True)
    return pointing(maps, masks, tolerance)


def _off_by_one_row(maps, masks, tolerance):
    hits = []
    for emap, mask in zip(maps, masks):
        y, x = divmod(int(emap.argmax()), emap.shape[1])
        inside = mask.nonzero().float()
        hits.append(bool(torch.cdist(torch.tensor([[float(y + 1), float(x)]]), inside).min() <= tolerance))
    return hits


RIGHT05 = [("loop with cdist", pointing), ("vectorised", pointing_vectorised), ("numpy", pointing_numpy)]
WRONG05 = [
    ("minimum", lambda m, k, t: pointing(-m, k, t), "minimum"),
    ("tolerance ignored", lambda m, k, t: pointing(m, k, 0.0), "within that many pixels"),
    ("rows and columns swapped", _swapped, "Rows and columns are swapped"),
    ("square window", _pointing_metric(torch.maximum), "square window"),
    ("steps along rows and columns", _pointing_metric(lambda dy, dx: dy + dx), "steps along rows and columns"),
    ("squared distance against the tolerance", _pointing_metric(lambda dy, dx: dy**2 + dx**2), "squared distance"),
    # neighbours it does not name
    ("peak one row off", _off_by_one_row, "first on map"),
    ("always a hit", lambda m, k, t: [True] * len(m), "first on map"),
    ("one value", lambda m, k, t: [True], "one hit (True / False) per map"),
    ("maps normalised in place", _normalised_in_place, "changed its input `maps`"),
    ("returns None", lambda m, k, t: None, NOT_ANSWERED),
    ("raises", lambda m, k, t: m.nonexistent, "raised AttributeError"),
]


@pytest.mark.parametrize("name, right", RIGHT05, ids=ids(RIGHT05))
def test_ch05_right_answers_pass(capsys, name, right):
    assert "19 maps" in says_correct(capsys, ch05.check_pointing_game, right)


@pytest.mark.parametrize("name, wrong, hint", WRONG05, ids=ids(WRONG05))
def test_ch05_wrong_answers_fail(name, wrong, hint):
    message = fails_with(ch05.check_pointing_game, wrong, hint=hint)
    if hint == "first on map":
        assert "maximum is at (row" in message and "pixels from the nearest pixel" in message


def test_ch05_the_cases_tell_the_neighbours_apart():
    maps, masks = ch05.pointing_cases()
    hits0 = gl.metrics.pointing_game(maps, masks, 0.0)
    hits3 = gl.metrics.pointing_game(maps, masks, 3.0)
    assert hits0.any() and not hits0.all()  # the cases can tell a right function from a constant
    assert not torch.equal(hits0, hits3)  # and see the tolerance
    for metric in ("square", "manhattan"):  # and the distance
        assert not torch.equal(ch05._metric_hits(maps, masks, 3.0, metric), hits3)


# ------------------------------------------------------------------------------ chapter 6: text-blind
@pytest.fixture(scope="module")
def shapes():
    return gl.load_clip("shapes")


def test_ch06_text_awareness(capsys, shapes):
    scene = gl.synthetic.make_scenes(1, seed=7, n_objects=2)[0]
    phrases = [o.phrase for o in scene.objects]

    def is_text_aware(method):
        exp = gl.explain(shapes, [scene.image, scene.image], phrases, method=method)
        a, b = (m / m.max() for m in exp.maps)
        return bool((a - b).abs().max() > 1e-3)

    assert "7 methods" in says_correct(capsys, ch06.check_text_awareness, is_text_aware)

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
        (half_right, "first self_attention"),
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


def deletion_numpy(image, saliency, substrate, counts, score):
    order = np.argsort(-saliency.numpy().ravel(), kind="stable")
    out = []
    for n in counts:
        x = image.numpy().reshape(3, -1).copy()
        x[:, order[:n]] = substrate.numpy().reshape(3, -1)[:, order[:n]]
        out.append(float(score(torch.from_numpy(x.reshape(image.shape)))))
    return out


def _deletion_with(order_of=None, fill=None, shift=0):
    def curve(image, saliency, substrate, counts, score):
        order = (order_of(saliency) if order_of else saliency.flatten().argsort(descending=True))
        out = []
        for n in counts:
            x = image.reshape(3, -1).clone()
            top = order[:max(n + shift, 0)]
            x[:, top] = (fill(substrate) if fill else substrate).reshape(3, -1)[:, top]
            out.append(score(x.reshape(image.shape)))
        return torch.stack(out)
    return curve


def _insertion(image, saliency, substrate, counts, score):
    rank = saliency.flatten().argsort(descending=True).argsort().reshape(saliency.shape)
    return torch.stack([score(torch.where(rank < n, image, torch.zeros_like(image))) for n in counts])


def _in_place_deletion(image, saliency, substrate, counts, score):
    order = saliency.flatten().argsort(descending=True)
    out, flat = [], image.view(3, -1)
    for n in counts:
        flat[:, order[:n]] = substrate.reshape(3, -1)[:, order[:n]]  # writes into the caller's image
        out.append(score(image))
    return torch.stack(out)


RIGHT07 = [("loop", deletion), ("batched", deletion_batched), ("numpy, one image at a time", deletion_numpy)]
WRONG07 = [
    ("least salient first", _deletion_with(order_of=lambda s: s.flatten().argsort()), "most* salient pixels first"),
    ("ranked by absolute value", _deletion_with(order_of=lambda s: s.abs().flatten().argsort(descending=True)),
     "absolute value"),
    ("black", _deletion_with(fill=torch.zeros_like), "not black"),
    ("mean colour", _deletion_with(fill=lambda s: s.mean((1, 2), keepdim=True).expand_as(s)), "mean colour"),
    ("insertion", _insertion, "That is insertion"),
    ("off-by-one slice order[:n + 1]", _deletion_with(shift=1), "one more"),
    ("off-by-one slice order[:n - 1]", _deletion_with(shift=-1), "one fewer"),
    # neighbours it does not name: the first image scored that differs
    ("ranked column by column", _deletion_with(order_of=lambda s: s.T.flatten().argsort(descending=True)),
     "the image you scored at checkpoint 1"),
    ("random order", _deletion_with(order_of=lambda s: torch.randperm(s.numel(), generator=torch.Generator()
                                                                      .manual_seed(0))),
     "the image you scored at checkpoint 1"),
    ("substrate's pixels shifted by one",
     _deletion_with(fill=lambda s: s.roll(1, dims=-1)), "the image you scored at checkpoint 1"),
    ("the image changed in place", _in_place_deletion, "changed its input `image`"),
    ("curve off by a factor", lambda *a: 2 * deletion(*a), "times 2"),
    ("no answer", lambda *a: ..., NOT_ANSWERED),
    ("raises", lambda *a: 1 / 0, "raised ZeroDivisionError"),
]


@pytest.mark.parametrize("name, right", RIGHT07, ids=ids(RIGHT07))
def test_ch07_right_answers_pass(capsys, name, right):
    out = says_correct(capsys, ch07.check_deletion_curve, right)
    assert "6 checkpoints" in out and "images you scored are the library's" in out


@pytest.mark.parametrize("name, wrong, hint", WRONG07, ids=ids(WRONG07))
def test_ch07_wrong_answers_fail(name, wrong, hint):
    message = fails_with(ch07.check_deletion_curve, wrong, hint=hint)
    if "checkpoint 1" in hint:
        assert "(row" in message and "the substrate" in message


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


def lift_means(maps, masks):  # the mean mass on the object over the mean mass everywhere: the same
    mass = F.relu(maps)
    return torch.stack([m[k].mean() / m.mean() for m, k in zip(mass, masks)])


def _share(m, k):
    return (m.clamp(min=0) * k).sum((1, 2)) / m.clamp(min=0).sum((1, 2))


def _clamp_in_place(maps, masks):
    maps.clamp_(min=0)
    return lift(maps, masks)


RIGHT08 = [("torch", lift), ("numpy", lift_numpy), ("ratio of means", lift_means)]
WRONG08 = [
    ("not clamped", lambda m, k: (m * k).sum((1, 2)) / m.sum((1, 2)) / k.float().mean((1, 2)), "Clamp the map at 0"),
    ("absolute value", lambda m, k: lift(m.abs(), k), "not take its absolute value"),
    ("the share only", _share, "divide it by the mask's share"),
    ("over the pixel count", lambda m, k: _share(m, k) / k.sum((1, 2)), "not by its pixel"),
    ("mass off the object as the denominator",
     lambda m, k: (m.clamp(min=0) * k).sum((1, 2)) / (m.clamp(min=0) * ~k).sum((1, 2)) / k.float().mean((1, 2)),
     "not with the mass off the object"),
    # neighbours it does not name
    ("min-maxed map", lambda m, k: lift(torch.stack([minmax(x) for x in m]), k), "first differs"),
    ("the mask's complement", lambda m, k: lift(m, ~k), "first differs"),
    ("mask share of the object's bounding box", lambda m, k: _share(m, k) / torch.stack(
        [x.any(1).float().mean() * x.any(0).float().mean() for x in k]), "first differs"),
    ("clamped in place", _clamp_in_place, "changed its input `maps`"),
    ("returns None", lambda m, k: None, NOT_ANSWERED),
    ("untouched starter", None, NOT_ANSWERED),
]


@pytest.mark.parametrize("name, right", RIGHT08, ids=ids(RIGHT08))
def test_ch08_right_answers_pass(capsys, name, right):
    assert "12 signed maps" in says_correct(capsys, ch08.check_lift, right)


@pytest.mark.parametrize("name, wrong, hint", WRONG08, ids=ids(WRONG08))
def test_ch08_wrong_answers_fail(name, wrong, hint):
    message = fails_with(ch08.check_lift, wrong, hint=hint)
    if hint == "first differs":
        assert "case " in message and "pixels)" in message


# ------------------------------------------------------------------------------ chapter 9: region pooling
def pool(dense, maps):
    w = maps.clamp(min=0).flatten(1)
    w = w / w.sum(1, keepdim=True)
    return (w[:, :, None] * dense.flatten(1, 2)).sum(1)


def pool_einsum(dense, maps):
    w = F.relu(maps)
    return torch.einsum("bhw,bhwe->be", w / w.sum((1, 2), keepdim=True), dense)


def pool_loops(dense, maps):
    out = []
    for d, m in zip(dense.numpy(), maps.numpy()):
        w = np.maximum(m, 0)
        out.append((w[..., None] * d).sum((0, 1)) / w.sum())
    return np.stack(out)


def _weights(maps):
    return maps.clamp(min=0) / maps.clamp(min=0).sum((1, 2), keepdim=True)


def _clamp_maps_in_place(dense, maps):
    maps.clamp_(min=0)
    return pool(dense, maps)


RIGHT09 = [("flat weights", pool), ("einsum", pool_einsum), ("numpy loops", pool_loops)]
WRONG09 = [
    ("not normalised", lambda d, m: torch.einsum("bhw,bhwe->be", m.clamp(min=0), d), "Normalise each map's weights"),
    ("not clamped", lambda d, m: torch.einsum("bhw,bhwe->be", m / m.sum((1, 2), keepdim=True), d),
     "Clamp the map at 0"),
    ("absolute value", lambda d, m: pool(d, m.abs()), "not take its absolute value"),
    ("over the maximum", lambda d, m: torch.einsum(
        "bhw,bhwe->be", m.clamp(min=0) / m.clamp(min=0).amax((1, 2), keepdim=True), d), "not their maximum"),
    ("softmax", lambda d, m: torch.einsum("bn,bne->be", m.flatten(1).softmax(1), d.flatten(1, 2)), "not a softmax"),
    ("mean where positive", lambda d, m: pool(d, (m > 0).float()), "not the plain mean"),
    ("mean of all patches", lambda d, m: d.mean((1, 2)), "mean of all patches"),
    # neighbours it does not name
    ("weights squared", lambda d, m: pool(d, m.clamp(min=0) ** 2), "first differs"),
    ("features normalised first", lambda d, m: pool(F.normalize(d, dim=-1), m), "first differs"),
    ("map transposed against the features", lambda d, m: torch.einsum(
        "bwh,bhwe->be", _weights(m).reshape(len(m), m.shape[2], m.shape[1]), d), "first differs"),
    ("a window of one row off", lambda d, m: pool(d, m.roll(1, dims=1)), "first differs"),
    ("clamped in place", _clamp_maps_in_place, "changed its input `maps`"),
    ("no answer", lambda d, m: ..., NOT_ANSWERED),
]


@pytest.mark.parametrize("name, right", RIGHT09, ids=ids(RIGHT09))
def test_ch09_right_answers_pass(capsys, name, right):
    assert "5 signed maps on a 4 x 6 grid" in says_correct(capsys, ch09.check_region_pooling, right)


@pytest.mark.parametrize("name, wrong, hint", WRONG09, ids=ids(WRONG09))
def test_ch09_wrong_answers_fail(name, wrong, hint):
    message = fails_with(ch09.check_region_pooling, wrong, hint=hint)
    if hint == "first differs":
        assert "region " in message and "feature " in message


def test_a_long_correct_message_is_printed_in_lines_that_fit_the_page(capsys):
    from gradeclip_lib.exercises.checking import LINE_WIDTH, passed
    message = "your curve equals the library's deletion protocol at 6 checkpoints " * 4
    returned = passed(message)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 1 and all(len(line) <= LINE_WIDTH for line in lines)
    assert all(line.startswith("  ") for line in lines[1:])
    assert returned == f"Correct: {message}" == " ".join(line.strip() for line in lines) + " "
