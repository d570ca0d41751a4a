"""The predict exercises' checks: the worked answer's prediction passes with "Correct" against the
library's own measurement (run for real, once per chapter), every wrong prediction fails with a hint
that says what was measured, a misspelt one says what is expected, and an untouched starter (``...``)
fails with 'no answer yet' before anything is measured."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import fails_with, says_correct

import gradeclip_lib as gl
from gradeclip_lib.exercises import NOT_ANSWERED, ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09
from gradeclip_lib.exercises.checking import as_choice, as_names, as_yes_no, check_number


@pytest.fixture(scope="module")
def shapes():
    return gl.load_clip("shapes")


def never(*args, **kwargs):
    raise AssertionError("measured although the answer was not given")


# ------------------------------------------------------------------------------ the shared parsing
@pytest.mark.parametrize("answer, expected", [(True, True), ("yes", True), ("No", False), (False, False),
                                              ("Yes.", True), (" no!", False), ("'no'", False)])
def test_yes_no_spellings(answer, expected):
    assert as_yes_no(answer, "x") is expected


def test_choices_names_and_numbers_say_what_is_expected():
    assert as_choice("No change", ("up", "down", "no change"), "x") == "no change"
    fails_with(as_choice, "sideways", ("up", "down"), "x", hint="answer one of 'up', 'down'")
    fails_with(as_yes_no, "maybe", "x", hint="True or False")
    fails_with(as_names, "red", "x", ("red", "a"), hint="expected a list of names")
    fails_with(as_names, ["blue"], "x", ("red", "a"), hint="'blue' is not one of")
    fails_with(check_number, "a lot", 0.5, 0.1, "x", hint="expected a number")
    fails_with(check_number, 0.8, 0.5, 0.1, "x", hint="too high")
    for check in (as_yes_no, lambda a, w: as_choice(a, ("up",), w), lambda a, w: check_number(a, 0.5, 0.1, w)):
        fails_with(check, ..., "x", hint=NOT_ANSWERED)


# ------------------------------------------------------------------------------ each chapter
def test_ch01(capsys, shapes):
    assert "S is" in says_correct(capsys, ch01.check_prediction, False, True, shapes)
    fails_with(ch01.check_prediction, True, True, shapes, hint="never sees the text")
    fails_with(ch01.check_prediction, False, "no", shapes, hint="another text, another S")
    fails_with(ch01.check_prediction, ..., True, shapes, hint=NOT_ANSWERED)


def test_ch02_measured(capsys, shapes):
    # passes only if both fall by more than the margins (0.05 for the rate, 0.02 for the mass)
    assert "200 scenes" in says_correct(capsys, ch02.check_prediction, "down", "falls", shapes)


@pytest.mark.parametrize("pointing, mass, hint", [
    ("up", "down", "pointing: you predicted 'up', the library measures 'down'"),
    ("no change", "down", "spread over the image"),
    ("down", "same", "mass: you predicted 'no change'"),
    ("down", "sideways", "answer one of 'up', 'down', 'no change'"),
    (..., "down", NOT_ANSWERED),
    ("down", ..., NOT_ANSWERED),
])
def test_ch02_wrong(monkeypatch, pointing, mass, hint):
    monkeypatch.setattr(ch02, "spatial_weight_effect", lambda clip, n: {True: (0.67, 0.11), False: (0.52, 0.04)})
    fails_with(ch02.check_prediction, pointing, mass, object(), hint=hint)


def test_ch02_explore_measured(capsys, shapes):
    assert "on neither in" in says_correct(capsys, ch02.check_absent_object, "neither", shapes)


@pytest.mark.parametrize("peak, hint", [
    ("on the colour's object", "not the map of one of its parts"),
    ("the star", "the library measures 'on neither'"),
    ("in the corner", "answer one of"),
    (..., NOT_ANSWERED),
])
def test_ch02_explore_wrong(monkeypatch, peak, hint):
    monkeypatch.setattr(ch02, "absent_object_peaks", lambda clip, n: dict(zip(ch02.PEAKS, (4, 5, 31))))
    fails_with(ch02.check_absent_object, peak, object(), hint=hint)


def test_ch03_measured(capsys, shapes):
    assert "shape word gets the most" in says_correct(capsys, ch03.check_prediction, "shape", 0.02, shapes)


@pytest.mark.parametrize("most, share, hint", [
    ("colour", 0.02, "shape word carries more"),
    ("photo", 0.02, "cannot tell images apart"),
    ("shape", 0.5, "too high"),
    ("shape", 1.5, "between 0 and 1"),
    ("the verb", 0.02, "answer one of"),
    (..., 0.02, NOT_ANSWERED),
    ("shape", ..., NOT_ANSWERED),
])
def test_ch03_wrong(monkeypatch, most, share, hint):
    monkeypatch.setattr(ch03, "template_weights", lambda clip, n: torch.tensor([0.0, 0.006, 0.005, 0.004, 0.13, 0.85]))
    fails_with(ch03.check_prediction, most, share, object(), hint=hint)


def test_ch03_explore_measured(capsys, shapes):
    assert "Word weights are relative" in says_correct(capsys, ch03.check_mismatch, "filler", shapes)


@pytest.mark.parametrize("target, hint", [
    ("the object words", "the ReLU drops"),
    ("object", "the library measures 'the template words'"),
    ("the verbs", "answer one of"),
    (..., NOT_ANSWERED),
])
def test_ch03_explore_wrong(monkeypatch, target, hint):
    monkeypatch.setattr(ch03, "mismatch_weights", lambda clip, n: {"matching": (0.9, 0.03, 0.97),
                                                                   "not matching": (0.36, 0.85, 0.15)})
    fails_with(ch03.check_mismatch, target, object(), hint=hint)


BLIND_TO_CNN = ["rollout", "game", "mask_clip", "clip_surgery", "legrad"]


def test_ch04_measured(capsys):
    rn50 = gl.load_clip("RN50", pretrained=None)
    out = says_correct(capsys, ch04.check_prediction, 126,
                       ["attention rollout", "GAME", "MaskCLIP", "CLIP Surgery", "LeGrad"], rn50)
    assert "9 x 14 grid, 126 cells" in out


@pytest.mark.parametrize("cells, methods, hint", [
    ((14, 9), BLIND_TO_CNN, "the height comes first"),
    (49, BLIND_TO_CNN, "do not resize to 224"),
    (150, BLIND_TO_CNN, "nearest multiple of the stride (32): 300 -> 288"),
    (126, [*BLIND_TO_CNN, "self_attention"], "self_attention runs on RN50"),
    (126, ["rollout"], "clip_surgery, game, legrad, mask_clip cannot"),
    (126, "rollout", "expected a list of names"),
    (126, ["vgg"], "is not one of"),
    (..., BLIND_TO_CNN, NOT_ANSWERED),
    (126, ..., NOT_ANSWERED),
])
def test_ch04_wrong(monkeypatch, cells, methods, hint):
    from types import SimpleNamespace

    monkeypatch.setattr(ch04, "explain", lambda *a, **k: SimpleNamespace(maps=torch.zeros(1, 9, 14)))
    fails_with(ch04.check_prediction, cells, methods, object(), hint=hint)


def test_ch04_a_grid_is_right_too(capsys, monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(ch04, "explain", lambda *a, **k: SimpleNamespace(maps=torch.zeros(1, 9, 14)))
    says_correct(capsys, ch04.check_prediction, (9, 14), BLIND_TO_CNN, object())


def test_ch05_measured(capsys, shapes):
    floor = ch05.pointing_floor(64)
    assert 0.03 < floor < 0.09
    assert "floor every method must beat" in says_correct(capsys, ch05.check_prediction, 0.06, shapes)


@pytest.mark.parametrize("rate, hint", [
    (0.25, "One in four is the chance of picking the right *object*"),
    (0.5, "share of the image within the tolerance"),
    (6, "a rate between 0 and 1"),
    ("often", "expected a number"),
    (..., NOT_ANSWERED),
])
def test_ch05_wrong(monkeypatch, rate, hint):
    monkeypatch.setattr(ch05, "make_scenes", never)
    if rate in (0.25, 0.5):
        monkeypatch.setattr(ch05, "pointing_floor", lambda size: 0.057)
        monkeypatch.setattr("gradeclip_lib.shapesworld.evaluate.image_size", lambda clip: 64)
        monkeypatch.setattr("gradeclip_lib.shapesworld.evaluate.localisation",
                            lambda *a, **k: {"pointing": torch.tensor([False, True, False])})
    fails_with(ch05.check_prediction, rate, object(), hint=hint)


AWARE = {m: m not in ("self_attention", "rollout") for m in [*ch06.TEXT_AWARE, "m2ib", "rise"]}


def table_rows(aware_rate: float, blind_rate: float) -> list[dict]:
    """A localisation table as chapter 6 computes it, four objects: hits per scene for each method."""
    def hits(rate):
        return torch.arange(100) < int(rate * 100)

    return [{"objects": 4, "method": m, "hits": hits(aware_rate if AWARE[m] else blind_rate)} for m in AWARE] + [
        {"objects": 1, "method": m, "hits": hits(0.95)} for m in AWARE]


def test_ch06_measured(capsys, shapes):
    out = says_correct(capsys, ch06.check_prediction, AWARE, "text-aware", table_rows(0.8, 0.3), shapes)
    assert "only self_attention and rollout give the same map" in out


@pytest.mark.parametrize("changes, group, hint", [
    ({**AWARE, "rollout": True}, "text-aware", "first rollout: you predicted True"),
    ({**AWARE, "rise": False}, "text-aware", "it reads the text"),
    ({m: True for m in AWARE}, "text-aware", "2 of 9 wrong"),
    (AWARE, "text-blind", "can at best find *an* object"),
    (AWARE, "the same", "the library measures 'text-aware'"),
    ({"grad_eclip": True}, "text-aware", "missing: self_attention"),
    (AWARE, "neither group", "answer one of"),
    ({m: ... for m in AWARE}, "text-aware", NOT_ANSWERED),
    (..., "text-aware", NOT_ANSWERED),
    (AWARE, ..., NOT_ANSWERED),
])
def test_ch06_wrong(monkeypatch, changes, group, hint):
    monkeypatch.setattr(ch06, "text_changes", lambda clip, methods: {m: float(AWARE[m]) for m in methods})
    fails_with(ch06.check_prediction, changes, group, table_rows(0.8, 0.3), object(), hint=hint)


def test_ch07_measured(capsys, shapes):
    # passes only if the measured probabilities lie within 0.2 of 0.05 and 0.8, and the perfect order is lower at 50 %
    assert "50 scenes" in says_correct(capsys, ch07.check_prediction, 0.05, 0.8, "the perfect map", shapes)


@pytest.mark.parametrize("perfect, random, lower, hint", [
    (0.9, 0.8, "perfect", "perfect_at_5: you predicted 0.9"),
    (0.05, 0.2, "perfect", "random_at_5: you predicted 0.2"),
    (0.05, 0.8, "random", "the perfect order has removed all of it"),
    (0.05, 0.8, "neither", "answer one of 'perfect', 'random'"),
    (0.05, 80, "perfect", "between 0 and 1"),
    (..., 0.8, "perfect", NOT_ANSWERED),
    (0.05, 0.8, ..., NOT_ANSWERED),
])
def test_ch07_wrong(monkeypatch, perfect, random, lower, hint):
    monkeypatch.setattr(ch07, "perfect_and_random", lambda clip, n: {
        "perfect": torch.tensor([0.99, 0.01, 0.001]), "random": torch.tensor([0.99, 0.81, 0.02])})
    fails_with(ch07.check_prediction, perfect, random, lower, object(), hint=hint)


WEIGHTS = {"red": (0.31, 500), "and": (0.12, 300), "a": (0.006, 900), "lovely": (0.001, 250)}


def test_ch08(capsys):
    says_correct(capsys, ch08.check_prediction, ["red", "and", "a", "lovely"], WEIGHTS)
    says_correct(capsys, ch08.check_prediction, ("Red", "AND", "a", "lovely"), WEIGHTS)


def test_ch08_near_ties_pass_in_either_order(capsys):
    close = {**WEIGHTS, "a": (0.007, 900), "lovely": (0.004, 250)}  # the chapter's: they swap with the captions
    for ranking in (["red", "and", "a", "lovely"], ["red", "and", "lovely", "a"]):
        assert "'a' and 'lovely' weigh about the same" in says_correct(capsys, ch08.check_prediction, ranking, close)
    fails_with(ch08.check_prediction, ["and", "red", "a", "lovely"], close, hint="place 1 differs")


@pytest.mark.parametrize("ranking, hint", [
    (["red", "and", "lovely", "a"], "place 3 differs: you put 'lovely'"),
    (["and", "red", "a", "lovely"], "place 1 differs"),
    (["red", "and", "a"], "rank each of"),
    (["red", "red", "a", "lovely"], "rank each of"),
    ("red and a lovely", "expected a list of names"),
    (..., NOT_ANSWERED),
])
def test_ch08_wrong(ranking, hint):
    fails_with(ch08.check_prediction, ranking, WEIGHTS, hint=hint)


@pytest.fixture(scope="module")
def record():
    from gradeclip_lib.finetune import shapes as tuning

    return json.loads(tuning.RESULTS_FILE.read_text())


def test_ch09(capsys, record):
    says_correct(capsys, ch09.check_prediction, ["masks", "grad_eclip", "uniform", "none"], "none", record)
    says_correct(capsys, ch09.check_prediction, ["true masks", "Grad-ECLIP regions", "uniform", "global loss only"],
                 "uniform", record)  # uniform regions barely move the dense pointing game either


@pytest.mark.parametrize("ranking, least, hint", [
    (["masks", "uniform", "grad_eclip", "none"], "none", "place 2 differs: you put 'uniform'"),
    (["grad_eclip", "masks", "uniform", "none"], "none", "place 1 differs"),
    (["masks", "grad_eclip", "uniform", "none"], "masks", "never looks at patches"),
    (["masks", "grad_eclip"], "none", "rank each of"),
    (["masks", "grad_eclip", "uniform", "none"], "attention", "answer one of"),
    (..., "none", NOT_ANSWERED),
    (["masks", "grad_eclip", "uniform", "none"], ..., NOT_ANSWERED),
])
def test_ch09_wrong(record, ranking, least, hint):
    fails_with(ch09.check_prediction, ranking, least, record, hint=hint)


def test_ch09_explore_measured(capsys, shapes):
    out = says_correct(capsys, ch09.check_generalisation, True, shapes, gl.load_clip("shapes-tuned"))
    assert "4 objects: base" in out and "300 scenes" in out


@pytest.mark.parametrize("holds, rates, hint", [
    (False, {4: 0.30, 5: 0.12}, "you predicted False"),
    ("yes", {4: 0.60, 5: 0.60}, "does not carry over"),  # a model whose gain vanishes: True is wrong then
    ("perhaps", {4: 0.30, 5: 0.12}, "True or False"),
    (..., {4: 0.30, 5: 0.12}, NOT_ANSWERED),
])
def test_ch09_explore_wrong(monkeypatch, holds, rates, hint):
    base, tuned = object(), object()
    monkeypatch.setattr(ch09, "dense_pointing", lambda model, k, n: rates[k] if model is base else 0.6)
    fails_with(ch09.check_generalisation, holds, base, tuned, hint=hint)
