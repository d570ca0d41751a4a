"""Where a chapter notebook's exercises and their self-check cells are: a markdown cell with a MyST
``{exercise}`` directive (``:label: ex-02-code``, title ``2.2 Code: ...``), then the code cells tagged
``check`` that come before the next exercise."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

EXERCISE = re.compile(r"^`{3,}\{exercise\}\s*(?P<title>.*)$", re.MULTILINE)
LABEL = re.compile(r"^:label:\s*(?P<label>\S+)", re.MULTILINE)
NUMBER = re.compile(r"^(?P<number>\d+\.\d+)\s*(?P<kind>\w+)?")
CHECK_TAG = "check"


@dataclass
class Exercise:
    """One exercise of a notebook: its number ("2.2"), label, kind word, title and check cells' indices."""

    number: str
    label: str
    kind: str
    title: str
    cell: int
    checks: list[int] = field(default_factory=list)


def is_check(cell: dict) -> bool:
    """A self-check cell: a code cell tagged ``check``."""
    return cell.get("cell_type") == "code" and CHECK_TAG in cell.get("metadata", {}).get("tags", [])


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def find_exercises(nb: dict) -> list[Exercise]:
    """The exercises of a notebook (as JSON or nbformat), in order, each with the check cells that follow it."""
    found: list[Exercise] = []
    for index, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") == "markdown":
            match = EXERCISE.search(_source(cell))
            if match:
                title = match["title"].strip()
                label = LABEL.search(_source(cell))
                number = NUMBER.match(title)
                kind = (number["kind"] or "") if number else ""
                found.append(Exercise(number=number["number"] if number else (label["label"] if label else title),
                                      label=label["label"] if label else "", kind=kind.lower(), title=title,
                                      cell=index))
        elif is_check(cell) and found:
            found[-1].checks.append(index)
    return found


def use_reference_checks(nb: dict, reference: dict) -> dict:
    """A copy of ``nb`` whose check cells are the reference notebook's, exercise by exercise (matched by
    label), so that a check a student edited, emptied or deleted runs as the book wrote it."""
    nb = copy.deepcopy(nb)
    ref_cells = reference["cells"]
    ref_checks = {e.label: [copy.deepcopy(ref_cells[i]) for i in e.checks] for e in find_exercises(reference)}
    exercises = find_exercises(nb)
    ends = [e.cell for e in exercises[1:]] + [len(nb["cells"])]
    for exercise, end in reversed(list(zip(exercises, ends))):  # from the end: indices before stay valid
        wanted = ref_checks.get(exercise.label)
        if wanted is None:
            continue
        for cell in wanted:
            cell["outputs"], cell["execution_count"] = [], None
        at = exercise.checks[0] if exercise.checks else end
        cells = [c for i, c in enumerate(nb["cells"][:end]) if i not in exercise.checks]
        at -= sum(1 for i in exercise.checks if i < at)
        nb["cells"] = cells[:at] + wanted + cells[at:] + nb["cells"][end:]
    return nb
