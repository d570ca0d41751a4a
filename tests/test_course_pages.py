"""The course's pages agree with each other: every chapter opens with its goals, its time and its
exercises' kinds and difficulty, as the teacher's table states them, and every quiz asks for at least
one calculation whose answer is checked here."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("0*.ipynb"))
LEVELS = ("easy", "medium", "harder")


def teacher_rows() -> dict[str, list[str]]:
    text = (ROOT / "book" / "teaching.md").read_text()
    rows = {}
    for line in text.splitlines():
        link = re.match(r"\| \[[^\]]+\]\((\d\d_\w+)\.ipynb\) \|", line)
        if link:
            rows[link.group(1)] = [cell.strip() for cell in line.strip("|").split(" | ")][1:]
    return rows


def source(cell) -> str:
    return "".join(cell["source"])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_opens_with_goals_time_and_exercises_as_the_teacher_states(path):
    cells = json.loads(path.read_text())["cells"]
    assert source(cells[0]).startswith("# ")
    opening = source(cells[1]).splitlines()
    assert cells[1]["cell_type"] == "markdown" and opening[0] == "> **In this chapter you will**"
    goals = [line[4:].rstrip(";.") for line in opening if line.startswith("> - ")]
    time = re.search(r"about (\d+) min of reading and (\d+) min of exercises", source(cells[1]))
    listed = re.findall(r"(\d\.\d) (predict|code|explore) \((\w+)\)", source(cells[1]))
    titles = [re.match(r"````\{exercise\} (\d\.\d) (\w+):", source(c)) for c in cells]
    titles = [(t.group(1), t.group(2).lower()) for t in titles if t]
    assert 2 <= len(goals) <= 4 and time
    assert [(n, kind) for n, kind, _ in listed] == titles and len(titles) == 3
    assert all(level in LEVELS for _, _, level in listed)
    goal_text, reading, exercises = teacher_rows()[path.stem]
    assert goal_text == "; ".join(goals)
    assert reading == f"{time.group(1)} min"
    assert exercises == f"{time.group(2)} min: " + ", ".join(level for _, _, level in listed)


QUIZZES = sorted((ROOT / "book" / "quizzes").glob("*.json"))


def numeric(path: Path) -> list[dict]:
    return [q for q in json.loads(path.read_text()) if q["type"] == "numeric"]


def verdict(question: dict, value: float) -> dict:
    """The answer jupyterquiz gives ``value``: the first range [low, high) that holds it, or the default."""
    for answer in question["answers"]:
        if "range" in answer and answer["range"][0] <= value < answer["range"][1]:
            return answer
    return question["answers"][-1]


@pytest.mark.parametrize("path", QUIZZES, ids=lambda p: p.stem)
def test_every_quiz_asks_for_a_calculation_whose_ranges_are_well_formed(path):
    questions = numeric(path)
    assert questions, "a quiz without a calculation"
    for q in questions:
        answers = q["answers"]
        ranges = [a for a in answers if a.get("type") == "range"]
        assert answers[:-1] == ranges and answers[-1]["type"] == "default"  # the hint comes last
        assert ranges[0]["correct"] and sum(a["correct"] for a in answers) == 1
        spans = sorted(tuple(a["range"]) for a in ranges)
        assert all(isinstance(x, (int, float)) for span in spans for x in span)
        assert all(low < high for low, high in spans)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # no value falls in two ranges
        assert all(len(a["feedback"]) > 20 for a in answers)
        assert "<" not in q["question"]  # the question is set as HTML


def _attention():
    import torch

    logits = torch.tensor([16.0, 8.0, 0.0, 8.0]) / 64**0.5  # the class token, then three patches
    return (float(torch.softmax(logits, 0)[1]),
            [float(torch.softmax(logits[1:], 0)[0]),  # the class token left out of the softmax
             float(torch.softmax(logits * 8, 0)[1])])  # no 1/sqrt(d)


def _grad_eclip():
    import torch

    w, v = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([2.0, 1.0, 1.0])
    lam = (0.4 - 0.1) / (0.5 - 0.1)
    return (float(torch.relu((w * v).sum() * lam)),
            [float((w * v).sum() * 0.4), float((w * v).sum() * (0.4 - 0.1) / (0.9 - 0.1)), lam,
             float(torch.relu(w * v).sum() * lam)])


def _word_weight():
    import torch

    evidence = torch.tensor([0.9, 0.1, -0.2, 0.05, 0.05, 0.6, 1.2, 3.0])
    words = evidence[1:-1].clamp_min(0)
    return (float(words[-1] / words.sum()),
            [float(1.2 / evidence.clamp_min(0).sum()), float(1.2 / evidence[1:-1].sum())])


def _pool_cell():
    import torch

    w, v = torch.tensor([1.0, -1.0, 0.5, 2.0]), torch.tensor([2.0, 1.0, 2.0, 0.5])
    lam = torch.tensor([0.5, 0.5, 1.0, 1.0])  # channel c takes its head's lambda
    return (float(torch.relu((w * v * lam).sum())),
            [float((w * v).sum() * lam.mean()), float((w * v * lam.flip(0)).sum())])


def _pointing():
    import torch

    from gradeclip_lib.metrics import pointing_game

    offsets = [(0, 0), (1, 0), (0, 2), (2, 2), (4, 5)]
    masks = torch.zeros(5, 64, 64, dtype=torch.bool)
    masks[:, 30:40, 30:40] = True  # the object; the maximum lies up and left of its corner (30, 30)
    maps = torch.zeros(5, 64, 64)
    for i, (dr, dc) in enumerate(offsets):
        maps[i, 30 - dr, 30 - dc] = 1.0
    return (float(pointing_game(maps, masks, tolerance=0.04 * 64).float().mean()),
            [float(pointing_game(maps, masks, tolerance=3).float().mean()),
             float(pointing_game(maps, masks, tolerance=0).float().mean())])


def _paired():
    import torch

    from gradeclip_lib.metrics import paired_comparison

    a = torch.tensor([True] * 120 + [True] * 14 + [False] * 4 + [False] * 62)
    b = torch.tensor([True] * 120 + [False] * 14 + [True] * 4 + [False] * 62)
    cmp = paired_comparison(a, b)
    assert cmp.a_higher and abs(cmp.p_value - 0.031) < 0.0005  # what the feedback says
    return cmp.only_a + cmp.only_b, [int(a.sum() - b.sum()), int((a == b).sum()), len(a)]


def _deletion_area():
    from gradeclip_lib.evaluation.curves import auc

    curve, x = [0.9, 0.5, 0.3, 0.2, 0.1, 0.1], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    return (auc(curve, x),
            [auc(curve, [2 * t for t in x]), sum(0.1 * c for c in curve[:-1]), sum(curve) / len(curve)])


def _lift():
    import torch

    from gradeclip_lib.exercises.ch08 import lift

    maps = torch.zeros(1, 20, 20)  # 400 pixels; the mask covers 20 of them (5 %)
    masks = torch.zeros(1, 20, 20, dtype=torch.bool)
    masks[0, 0, :] = True
    maps[0, 0, :4] = 1.0  # 4 of the positive mass inside
    maps[0, 5, :6] = 1.0  # 6 outside
    maps[0, 9, :2] = -1.0  # -2 of negative mass
    return float(lift(maps, masks)[0]), [(4 / 8) / 0.05, 0.05 / 0.4, 0.4]


def _pool():
    import torch

    from gradeclip_lib.finetune.regions import map_weights, pool_regions

    maps, dense = torch.tensor([[[-1.0, 1.0], [3.0, 0.0]]]), torch.tensor([[[8.0], [2.0], [6.0], [10.0]]])
    pooled = pool_regions(dense, map_weights(maps), torch.tensor([0]))
    flat = maps.flatten()
    return float(pooled[0, 0]), [float((flat / flat.sum() * dense.flatten()).sum()),
                                 float((flat.clamp_min(0) * dense.flatten()).sum()), float(dense.mean())]


CALCULATIONS = {"01_clip_attention": _attention, "02_grad_eclip_images": _grad_eclip,
                "03_grad_eclip_text": _word_weight, "04_beyond_vit": _pool_cell, "05_shapes_world": _pointing,
                "06_alternatives": _paired, "07_faithfulness": _deletion_area, "08_analyses": _lift,
                "09_finetuning": _pool}


@pytest.mark.parametrize("path", QUIZZES, ids=lambda p: p.stem)
def test_each_calculation_accepts_the_answer_the_library_computes_and_names_the_usual_mistakes(path):
    answer, mistakes = CALCULATIONS[path.stem]()
    question = numeric(path)[0]
    assert verdict(question, answer)["correct"]
    assert verdict(question, round(answer, 2))["correct"]  # two decimals are enough
    for wrong in mistakes:  # each has its own explanation, not the default hint
        assert verdict(question, wrong)["type"] == "range" and not verdict(question, wrong)["correct"]


def test_the_numbers_the_quizzes_quote_about_intervals_and_paired_tests():
    from gradeclip_lib.metrics import format_rate, wilson_interval
    from gradeclip_lib.metrics.paired import mcnemar_exact

    quizzes = {p.stem: p.read_text() for p in QUIZZES}
    assert mcnemar_exact(4, 0) == mcnemar_exact(0, 4) == 0.125  # the most uneven split of 4 scenes
    assert mcnemar_exact(5, 1) > 0.125
    assert mcnemar_exact(138, 48) < 1e-9  # 138 against 48 hits: the most disagreements they allow
    assert format_rate(16 / 200, *wilson_interval(16, 200)) in quizzes["05_shapes_world"]
    for k, n in ((138, 200), (48, 200)):
        assert format_rate(k / n, *wilson_interval(k, n)) in quizzes["05_shapes_world"]
    for k in (489, 485, 470):  # zero-shot before, after Grad-ECLIP regions, after raw-attention regions
        assert format_rate(k / 500, *wilson_interval(k, 500), digits=3) in quizzes["09_finetuning"]
    for k, n in ((134, 200), (124, 200)):
        assert format_rate(k / n, *wilson_interval(k, n)) in quizzes["06_alternatives"]
    half = 1.96 * (0.84 * 0.16 / 500 + 0.88 * 0.12 / 500) ** 0.5  # colour minus shape binding, two samples
    assert round(half, 3) == 0.043 and 0.04 - half < 0 < 0.04 + half
