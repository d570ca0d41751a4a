"""The paper's analyses on ShapesWorld, each number checked against a direct computation of its
definition: concept decomposition, attribute localisation and binding, groundedness and word weights."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

import gradeclip_lib as gl
from gradeclip_lib import analyses
from gradeclip_lib.analyses.concreteness import caption_words
from gradeclip_lib.captions import read_captions
from gradeclip_lib.errors import GradEclipError
from gradeclip_lib.metrics import bootstrap_interval, r_squared, spearman_with_interval
from gradeclip_lib.synthetic import make_scenes, make_twin_scenes
from gradeclip_lib.synthetic.scenes import COLOURS, SHAPES


@pytest.fixture(scope="module")
def shapes():
    return gl.load_clip("shapes")


# ---------------------------------------------------------------- statistics
def test_spearman_interval_follows_its_formula_and_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(size=30)
    rho, low, high = spearman_with_interval(x, y)
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))  # no ties: ranks are argsort of argsort
    assert rho == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    half = 1.959964 * math.sqrt((1 + rho**2 / 2) / 27)
    assert (low, high) == pytest.approx((math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)))
    with pytest.raises(ValueError, match="at least 4"):
        spearman_with_interval([1, 2, 3], [1, 2, 3])


def test_r_squared_and_bootstrap_against_direct_computations():
    rng = np.random.default_rng(1)
    x = rng.normal(size=400)
    y = 2 * x + 1 + rng.normal(size=400)
    r2, coef = r_squared(y, x)
    slope, intercept = np.polyfit(x, y, 1)
    assert coef == pytest.approx([intercept, slope])
    assert r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2)  # one predictor: R^2 is r^2
    low, high = bootstrap_interval(lambda idx: float(y[idx].mean()), len(y))
    sem = y.std(ddof=1) / math.sqrt(len(y))
    assert low == pytest.approx(y.mean() - 1.96 * sem, abs=0.3 * sem)
    assert high == pytest.approx(y.mean() + 1.96 * sem, abs=0.3 * sem)


# ---------------------------------------------------------------- scenes outside training
@pytest.mark.parametrize("shared", ["shape", "colour"])
def test_twin_scenes_share_exactly_one_attribute(shared):
    other = "colour" if shared == "shape" else "shape"
    for scene in make_twin_scenes(20, seed=3, shared=shared, others=2, size=48):
        target, twin, *rest = scene.objects
        assert getattr(target, shared) == getattr(twin, shared) and getattr(target, other) != getattr(twin, other)
        assert [o.phrase for o in scene.objects].count(target.phrase) == 1  # the phrase names one object
        for o in rest:  # the others share nothing with the twins
            assert o.colour not in (target.colour, twin.colour) and o.shape not in (target.shape, twin.shape)
        assert not any((a.mask & b.mask).any() for i, a in enumerate(scene.objects) for b in scene.objects[i + 1:])
    first = make_twin_scenes(3, seed=3, shared=shared, size=48)
    again = make_twin_scenes(3, seed=3, shared=shared, size=48)
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image)) for a, b in zip(first, again))
    with pytest.raises(ValueError, match="shared"):
        make_twin_scenes(1, shared="size")


# ---------------------------------------------------------------- groundedness
def test_groundedness_matches_an_estimate_from_sampled_captions():
    """I(count; scene) / H(count) estimated by counting words in captions the generator really wrote,
    conditioning on what of the scene the word can depend on (k, and whether its object is there)."""
    scenes = make_scenes(3000, seed=5, n_objects=(1, 3), size=24)
    exact = analyses.groundedness()
    for word, value in exact.items():
        joint = Counter()
        for s in scenes:
            present = sum(word in (o.colour, o.shape) for o in s.objects)
            joint[(len(s.objects), present, s.caption.split().count(word))] += 1
        count = Counter()
        for (_, _, c), m in joint.items():
            count[c] += m

        def h(counter):
            total = sum(counter.values())
            return -sum(m / total * math.log2(m / total) for m in counter.values())

        given = defaultdict(Counter)
        for (k, p, c), m in joint.items():
            given[(k, p)][c] += m
        conditional = sum(sum(g.values()) / len(scenes) * h(g) for g in given.values())
        estimate = (h(count) - conditional) / h(count)
        assert estimate == pytest.approx(value, abs=0.04), word
    assert {w for w, v in exact.items() if v > 1 - 1e-9} == {*COLOURS, *SHAPES, "and"}
    assert 0.3 < exact["a"] < 0.7 and exact["photo"] == 0


# ---------------------------------------------------------------- concept decomposition
def test_decomposition_records_follow_their_definitions(shapes):
    records = analyses.concept_decomposition(shapes, n=6, seed=123)
    scenes = make_scenes(6, seed=123, n_objects=3, size=64)
    for i in (0, 3):
        r, scene = records[i], scenes[i]
        k = r["k"]
        named = scene.objects[:k]
        assert sorted(p.strip() for p in r["caption"].replace(" and ", "|").split("|")
                      if p.strip()) != []  # a caption was written
        assert all(o.phrase in r["caption"] for o in named)
        assert not any(o.phrase in r["caption"] for o in scene.objects[k:])
        cap = gl.explain(shapes, scene.image, r["caption"])
        phrases = gl.explain(shapes, [scene.image] * 3, [o.phrase for o in scene.objects])
        assert r["corr_named"] == pytest.approx(
            np.corrcoef(cap.maps[0].flatten(), phrases.maps[:k].sum(0).flatten())[0, 1], abs=1e-4)
        up = cap.upsampled(normalized=False)[0].clamp_min(0).numpy()
        union = np.any([o.mask for o in named], axis=0)
        assert r["share_named"] == pytest.approx(up[union].sum() / up.sum(), abs=1e-4)
        assert r["area_named"] == pytest.approx(union.mean())
        img = shapes.encode_image(scene.image)[0]
        assert r["cos_caption"] == pytest.approx(float(img @ shapes.encode_text(r["caption"])[0]), abs=1e-4)
        summed = shapes.encode_text([o.phrase for o in named]).sum(0)
        assert r["cos_sum"] == pytest.approx(float(img @ summed / summed.norm()), abs=1e-4)
        caption = shapes.encode_text(r["caption"])[0]
        assert r["text_sum"] == pytest.approx(float(caption @ summed / summed.norm()), abs=1e-4)
        words = gl.explain_text(shapes, scene.image, r["caption"])
        objects = sum(float(w) for t, w in zip(words.tokens, words.weights) if t in COLOURS or t in SHAPES)
        assert r["weight_object"] == pytest.approx(objects, abs=1e-5) and r["words_object"] == 2 * k
    assert sum(records[0][f"weight_{c}"] for c in analyses.WORD_CLASSES) == pytest.approx(1, abs=1e-5)


def test_decomposition_summary_fits_and_groups_by_k():
    rng = np.random.default_rng(0)
    records = []
    for i in range(60):
        phrases = list(rng.uniform(0.2, 0.4, 1 + i % 3))
        records.append({"k": len(phrases), "cos_phrases": phrases, "cos_sum": float(np.mean(phrases)),
                        "cos_caption": 0.1 + 2 * float(np.mean(phrases)),  # exactly additive
                        **{key: float(rng.uniform()) for key in ("corr_named", "corr_unnamed", "corr_each",
                           "share_named", "share_unnamed", "area_named", "area_unnamed", "lift_named",
                           "lift_unnamed", "text_sum")},
                        **{f"weight_{c}": 0.5 for c in analyses.WORD_CLASSES},
                        **{f"words_{c}": 2 for c in analyses.WORD_CLASSES}})
    summary = analyses.decomposition_summary(records)
    fit = summary["additivity"]["mean of phrase cosines"]
    assert fit["r2"][0] == pytest.approx(1) and (fit["intercept"], fit["slope"]) == pytest.approx((0.1, 2))
    assert {k: v["scenes"] for k, v in summary["by_k"].items()} == {1: 20, 2: 20, 3: 20}
    mean, low, high = summary["by_k"][2]["share_named"]
    assert mean == pytest.approx(np.mean([r["share_named"] for r in records if r["k"] == 2])) and low < mean < high
    assert summary["weights"]["object"][0] == pytest.approx(0.25)


# ---------------------------------------------------------------- attributes
def test_attribute_localisation_counts_hits_against_direct_pointing(shapes):
    result = analyses.attribute_localisation(shapes, "colour", n=12, seed=5)
    scenes = make_twin_scenes(12, seed=5, shared="shape", size=64)
    maps = gl.explain(shapes, [s.image for s in scenes], [s.objects[0].phrase for s in scenes]).upsampled()
    radius = 0.04 * 64
    direct, area = [], []
    for m, s in zip(maps, scenes):
        peaks = np.argwhere(m.numpy() == m.numpy().max())
        inside = np.argwhere(s.objects[0].mask)
        dist = np.sqrt(((peaks[:, None, :] - inside[None, :, :]) ** 2).sum(-1)).min(1)
        direct.append(bool((dist <= radius).all()))
        yy, xx = np.mgrid[:64, :64]
        grid = np.stack([yy.ravel(), xx.ravel()], 1)
        area.append((np.sqrt(((grid[:, None] - inside[None]) ** 2).sum(-1)).min(1) <= radius).mean())
    assert result["hits"].tolist() == direct
    assert result["target"][0] == pytest.approx(np.mean(direct))
    assert result["chance_target"] == pytest.approx(np.mean(area))


@pytest.mark.parametrize("family", ["colour", "shape"])
def test_binding_foils_swap_in_the_other_objects_attribute(shapes, family):
    result = analyses.attribute_binding(shapes, family, n=20, seed=9)
    scenes = make_scenes(20, seed=9, n_objects=2, size=64)
    outcomes = []
    for s in scenes:
        a, b = s.objects
        foil = f"a {b.colour} {a.shape}" if family == "colour" else f"a {a.colour} {b.shape}"
        img = shapes.encode_image(s.image)[0]
        outcomes.append(bool(img @ shapes.encode_text(a.phrase)[0] > img @ shapes.encode_text(foil)[0]))
    assert result["hits"].tolist() == outcomes and result["chance"] == 0.5


# ---------------------------------------------------------------- word weights on any CLIP
def test_word_weights_merge_word_pieces_and_average_per_occurrence(tiny, images):
    captions = ["an zorblaxian fluffy cat", "a cat and a dog"]
    pieces = [gl.explain_text(tiny, im, c) for im, c in zip(images, captions)]
    words = caption_words(tiny, captions[0], pieces[0].tokens)
    assert [w for w, _ in words] == ["an", "zorblaxian", "fluffy", "cat"]
    assert len(pieces[0].tokens) > 4 and sum(len(i) for _, i in words) == len(pieces[0].tokens)
    weights = analyses.word_weights(tiny, images[:2], captions, batch_size=1)
    split = dict(words)["zorblaxian"]
    assert weights["zorblaxian"][0] == pytest.approx(float(pieces[0].weights[split].sum()), abs=1e-5)
    cat = [float(p.weights[p.tokens.index("cat")]) for p in pieces]
    assert weights["cat"] == (pytest.approx(np.mean(cat), abs=1e-5), 2)
    a = [float(w) for w, t in zip(pieces[1].weights, pieces[1].tokens) if t == "a"]
    assert weights["a"] == (pytest.approx(np.mean(a), abs=1e-5), 2)


def test_concreteness_correlation_uses_rated_frequent_words():
    weights = {"cat": (0.5, 9), "dog": (0.4, 9), "idea": (0.1, 9), "of": (0.05, 9), "rare": (0.9, 1), "x": (0.3, 9)}
    ratings = {"cat": 4.9, "dog": 4.8, "idea": 1.6, "of": 1.2, "rare": 1.0, "x": float("nan")}
    result = analyses.concreteness_correlation(weights, ratings, min_count=5)
    assert result["words"] == 4 and result["rho"][0] == pytest.approx(1)
    with pytest.raises(ValueError, match="at least 4"):
        analyses.concreteness_correlation(weights, ratings, min_count=10)


def test_read_ratings_detects_delimiter_and_columns(tmp_path):
    brysbaert = tmp_path / "norms.txt"
    brysbaert.write_text("Word\tBigram\tConc.M\tConc.SD\nCat\t0\t4.86\t0.5\nidea\t0\t1.61\t0.9\n")
    assert analyses.read_ratings(brysbaert) == {"cat": 4.86, "idea": 1.61}
    other = tmp_path / "other.csv"
    other.write_text("term,score\nsky,4.1\nhope,1.2\n")
    assert analyses.read_ratings(other, word_column="term") == {"sky": 4.1, "hope": 1.2}
    with pytest.raises(GradEclipError, match="name the word and rating columns"):
        analyses.read_ratings(other)
    with pytest.raises(FileNotFoundError, match="no ratings file"):
        analyses.read_ratings(tmp_path / "missing.txt")


def test_read_captions_from_coco_and_from_a_folder(tmp_path, images):
    folder = tmp_path / "pics"
    folder.mkdir()
    for i, im in enumerate(images[:2]):
        im.save(folder / f"{i}.png")
    (folder / "0.txt").write_text("a red thing\n\na blue thing\n")
    paths, captions = read_captions(folder)
    assert [p.name for p in paths] == ["0.png", "0.png"] and captions == ["a red thing", "a blue thing"]
    coco = tmp_path / "captions.json"
    coco.write_text(json.dumps({"images": [{"id": 7, "file_name": "1.png"}],
                                "annotations": [{"image_id": 7, "caption": " two cats "}]}))
    assert read_captions(coco, images=folder) == ([folder / "1.png"], ["two cats"])
    with pytest.raises(GradEclipError, match="folder of its images"):
        read_captions(coco)
    (folder / "1.png").unlink()
    with pytest.raises(GradEclipError, match="missing"):
        read_captions(coco, images=folder)


def test_shapes_word_weights_are_means_over_held_out_captions(shapes):
    weights = analyses.shapes_word_weights(shapes, n=10, seed=4)
    scenes = make_scenes(10, seed=4, n_objects=(1, 3), size=64)
    counts = Counter(w for s in scenes for w in s.caption.split())
    assert {w: c for w, (_, c) in weights.items()} == dict(counts)
    first = gl.explain_text(shapes, scenes[0].image, scenes[0].caption)
    assert torch.isclose(first.weights.sum(), torch.tensor(1.0), atol=1e-5)


def test_word_weights_command_on_a_captioned_folder(tmp_path, shapes, capsys):
    from gradeclip_lib.cli import main

    folder = tmp_path / "captioned"
    folder.mkdir()
    scenes = make_scenes(12, seed=8, size=64)
    for i, s in enumerate(scenes):
        s.image.save(folder / f"{i:02d}.png")
        (folder / f"{i:02d}.txt").write_text(s.caption + "\n")
    ratings = tmp_path / "ratings.tsv"
    ratings.write_text("Word\tConc.M\n" + "".join(f"{w}\t{v}\n" for w, v in analyses.groundedness().items()))
    out = tmp_path / "words.json"
    assert main(["word-weights", "--captions", str(folder), "--model", "shapes", "--ratings", str(ratings),
                 "--min-count", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    direct = analyses.word_weights(shapes, [folder / f"{i:02d}.png" for i in range(12)], [s.caption for s in scenes])
    assert report["words"].keys() == direct.keys()
    assert all(report["words"][w] == [pytest.approx(m, abs=1e-6), c] for w, (m, c) in direct.items())
    expected = analyses.concreteness_correlation(direct, analyses.groundedness(), min_count=2)["rho"]
    assert report["correlation"]["rho"] == pytest.approx(list(expected), abs=1e-6)
    assert "Spearman rho" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["word-weights", "--captions", str(empty), "--model", "shapes"]) == 2
    assert "no image with a caption" in capsys.readouterr().err


def test_tables_and_figures_show_the_measured_values():
    summary = {"by_k": {1: {"scenes": 3, **{k: (0.5, 0.4, 0.6) for k in (
        "corr_named", "corr_unnamed", "lift_named", "cos_caption", "cos_sum", "text_sum")},
        "lift_unnamed": (float("nan"),) * 3}}}
    table = analyses.decomposition_table(summary)
    assert table.cells[0] == ["1", "3", "0.50 [0.40, 0.60]", "0.50 [0.40, 0.60]", "0.5 [0.4, 0.6]", "n/a"]
    rows = [{"word": "red", "weight": 0.3, "groundedness": 1.0}, {"word": "photo", "weight": 0.01, "groundedness": 0.0}]
    ax = analyses.plot_word_weights(rows)
    assert [round(p.get_height(), 6) for p in ax.patches[:2]] == [0.3, 0.01]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["red", "photo"]
