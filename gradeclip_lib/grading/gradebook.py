"""The gradebook: rows from an exercise's results and the rubric, ``gradebook.csv`` written as rows come in,
and a short Markdown feedback file per student."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from .results import Outcome, Row
from .rubric import Rubric

COLUMNS = ["student", "chapter", "exercise", "passed", "points", "max_points", "message"]
REPORTS = "report"  # the chapter column of the reports' rows


def score(student: str, chapter: str, outcomes: Iterable[Outcome], rubric: Rubric) -> list[Row]:
    """Gradebook rows: a checked exercise earns its rubric's ``points`` when every check passed; the rubric's
    ``criteria`` (of any exercise, checked or not) make a row the teacher marks by hand."""
    rows = []
    for o in outcomes:
        ex, item = o.exercise, rubric.exercises.get(o.exercise.number)
        if o.passed is not None:
            full = rubric.checked_points(ex.number)
            rows.append(Row(student, chapter, ex.number, o.passed, full if o.passed else 0.0, full, o.message,
                            ex.title))
        if o.passed is None or (item and item.criteria):
            criteria = item.describe() if item and item.criteria else "no criteria in the rubric"
            rows.append(Row(student, chapter, ex.number, None, None, item.hand_points if item else None,
                            f"to mark by hand: {criteria}", ex.title))
    return rows


def report_rows(student: str, rubric: Rubric) -> list[Row]:
    """The reports a teacher marks by hand, one row each."""
    return [Row(student, REPORTS, name, None, None, item.hand_points, f"to mark by hand: {item.describe()}",
                item.title or name) for name, item in rubric.reports.items()]


def _exercise_key(row: Row) -> tuple:
    """Exercises in number order (1.2 before 1.10), the reports by name; a checked row before its hand row."""
    parts = row.exercise.split(".")
    number = tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (float("inf"), row.exercise)
    return number, row.passed is None


def _points(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _line(row: Row) -> list[str]:
    passed = "" if row.passed is None else str(row.passed).lower()
    return [row.student, row.chapter, row.exercise, passed, _points(row.points), _points(row.max_points), row.message]


class Gradebook:
    """``gradebook.csv`` in ``out``: each batch of rows is appended and flushed as soon as it is known, so a run
    that is stopped keeps everything graded before; ``finish`` rewrites it sorted by student and chapter."""

    def __init__(self, out: str | Path, rows: Iterable[Row] = ()) -> None:
        self.path = Path(out) / "gradebook.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[Row] = list(rows)
        with self.path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            writer.writerows(_line(r) for r in self.rows)

    def add(self, rows: list[Row]) -> None:
        """Append rows to the file now."""
        self.rows.extend(rows)
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(_line(r) for r in rows)
            fh.flush()
            os.fsync(fh.fileno())

    def finish(self) -> Path:
        """Rewrite the file sorted (students, then chapters in order, the reports last)."""
        order = sorted(self.rows, key=lambda r: (r.student, r.chapter == REPORTS, r.chapter, _exercise_key(r)))
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            writer.writerows(_line(r) for r in order)
        tmp.replace(self.path)
        return self.path


def _number(text: str) -> float | None:
    return float(text) if text else None


def read_gradebook(path: str | Path) -> list[Row]:
    """The rows of a ``gradebook.csv`` this module wrote (to resume a run)."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return [Row(r["student"], r["chapter"], r["exercise"], {"true": True, "false": False}.get(r["passed"]),
                    _number(r["points"]), _number(r["max_points"]), r["message"]) for r in csv.DictReader(fh)]


def feedback(student: str, rows: list[Row]) -> str:
    """A student's feedback in Markdown: per chapter, each exercise's result and message, and the totals."""
    lines = [f"# Feedback for {student}", ""]
    auto = [r for r in rows if r.passed is not None]
    if auto:
        got, full = sum(r.points or 0 for r in auto), sum(r.max_points or 0 for r in auto)
        lines += [f"Automatic checks: {sum(r.passed for r in auto)} of {len(auto)} passed, {got:g} of {full:g} "
                  f"points. The exercises marked by hand are graded by your teacher.", ""]
    for chapter in sorted({r.chapter for r in rows}, key=lambda c: (c == REPORTS, c)):
        lines += [f"## {'Reports' if chapter == REPORTS else f'Chapter {chapter}'}", ""]
        for r in (r for r in rows if r.chapter == chapter):
            name = r.title or r.exercise
            if r.passed is None:
                lines.append(f"- **{name}**: marked by your teacher"
                             + (f" (out of {r.max_points:g})." if r.max_points is not None else "."))
            else:
                verdict = "passed" if r.passed else "not passed yet"
                lines.append(f"- **{name}**: {verdict} ({_points(r.points)} / {_points(r.max_points)}). {r.message}")
        lines.append("")
    return "\n".join(lines)


def write_feedback(out: str | Path, student: str, rows: list[Row]) -> Path:
    """Write ``out/feedback/<student>.md``."""
    path = Path(out) / "feedback" / f"{student}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(feedback(student, rows), encoding="utf-8")
    return path
