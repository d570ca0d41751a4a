"""What an executed notebook says about each exercise: for a checked one, whether every check cell ran without
an error, and the check's message (its "Correct ..." line, its hint, the error that stopped it, or why it never
ran: a time limit, a dead kernel); an exercise without a check has no result to read."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .notebook import Exercise, _source, find_exercises, is_check

MAX_MESSAGE = 600
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Row:
    """One line of the gradebook; ``passed`` and ``points`` are None where a teacher marks by hand."""

    student: str
    chapter: str
    exercise: str
    passed: bool | None
    points: float | None
    max_points: float | None
    message: str
    title: str = ""


@dataclass
class Outcome:
    """An exercise's automatic result: ``passed`` None when it has no check cell."""

    exercise: Exercise
    passed: bool | None
    message: str


def _clean(text: str) -> str:
    text = " ".join(ANSI.sub("", text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _error(cell: dict) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


def _describe(error: dict) -> str:
    name, value = error.get("ename", "Error"), error.get("evalue", "")
    return _clean(value) if name == "AssertionError" and value else _clean(f"{name}: {value}")


def _ran(cell: dict) -> bool:
    return cell.get("execution_count") is not None or bool(cell.get("outputs"))


def _stopped(run: dict, index: int) -> str:
    """Why a cell that did not run never ran."""
    status, at = run.get("status", ""), run.get("cell")
    where = f" in cell {at + 1}" if isinstance(at, int) else ""
    if status == "timed out":
        limit = run.get("timeout")
        return _clean(f"timed out: the notebook ran past {limit:g} s{where}" if isinstance(limit, (int, float))
                      else f"timed out{where}")
    if status == "kernel died":
        return _clean(f"the kernel died{where} (a crash or out of memory); this check never ran")
    if status:
        return _clean(f"{status}: {run.get('detail', '')}")
    return "not run"


def _correct_messages(printed: str) -> list[str]:
    """The checks' "Correct ..." messages in what a cell printed, each joined back from the indented
    lines it was wrapped into."""
    messages: list[str] = []
    inside = False
    for line in printed.splitlines():
        if line.startswith("Correct"):
            messages.append(line)
            inside = True
        elif inside and line.startswith("  ") and line.strip():
            messages[-1] += " " + line.strip()
        else:
            inside = False
    return messages


def _check_cell(nb: dict, index: int) -> tuple[bool, str]:
    cell, run = nb["cells"][index], nb.get("metadata", {}).get("grading", {})
    if run.get("cell") == index and run.get("status") != "finished":
        return False, _stopped(run, index)
    if not _ran(cell):
        return False, _stopped(run, index)
    error = _error(cell)
    if error is None:
        printed = "".join(_source({"source": o.get("text", "")}) for o in cell.get("outputs", [])
                          if o.get("output_type") == "stream" and o.get("name") == "stdout")
        correct = _correct_messages(printed)
        return True, _clean(" ".join(correct)) if correct else "passed"
    message = _describe(error)
    if error.get("ename") != "AssertionError":  # the check itself broke: say what broke before it
        earlier = next(((i, e) for i, c in enumerate(nb["cells"][:index])
                        if c.get("cell_type") == "code" and not is_check(c) and (e := _error(c))), None)
        if earlier:
            message = _clean(f"{message} (after an error in cell {earlier[0] + 1}: {_describe(earlier[1])})")
    return False, message


def read_results(nb: dict) -> list[Outcome]:
    """Each exercise of an executed notebook (JSON or nbformat) with its automatic result."""
    outcomes = []
    for exercise in find_exercises(nb):
        if not exercise.checks:
            outcomes.append(Outcome(exercise, None, ""))
            continue
        results = [_check_cell(nb, i) for i in exercise.checks]
        failed = [message for ok, message in results if not ok]
        outcomes.append(Outcome(exercise, not failed, failed[0] if failed else
                                _clean(" ".join(m for _, m in results if m != "passed")) or "passed"))
    return outcomes
