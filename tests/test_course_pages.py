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
