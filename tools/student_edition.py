"""Write the student edition of the book: the chapters without solutions and without outputs.

    python tools/student_edition.py OUT [--expect-failures]

Removes every gated solution (the cells from a ``{solution-start}`` marker to its ``{solution-end}``,
both included) and every cell tagged ``solution``, clears all outputs, shows the quiz cells' code (the
edition's HTML is not executed, so a quiz shows only once a student runs it), and tags each self-check cell
(tag ``check``) ``raises-exception``: in the student's copy a check fails until the exercise is done.
Then it checks that no line of any removed solution is left. ``--expect-failures`` also stores, in
each check cell, the error it must raise on an untouched starter (``AssertionError``, "No answer
yet ..."), tagged for nbval to compare: the copy `make test` runs to see every check fail as intended.
The book's other pages (intro, teacher's guide, quizzes, _config.yml, _toc.yml) are copied as they are.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gradeclip_lib.exercises import NOT_ANSWERED  # noqa: E402

COPIED = ["_config.yml", "_toc.yml"]


def is_marker(cell, kind: str) -> bool:
    return cell.cell_type == "markdown" and cell.source.lstrip("`").startswith(f"{{{kind}}}")


def strip(nb, expect_failures: bool = False) -> tuple[object, list[str]]:
    """The student copy of one notebook, and the source lines of what was removed."""
    kept, removed, inside = [], [], False
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if is_marker(cell, "solution-start"):
            inside = True
        if inside or "solution" in tags:
            removed.append(cell.source)
        else:
            kept.append(cell)
        if is_marker(cell, "solution-end"):
            if not inside:
                raise ValueError("a {solution-end} without its {solution-start}")
            inside = False
    if inside:
        raise ValueError("a {solution-start} without its {solution-end}")
    for cell in kept:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        tags = cell.metadata.get("tags", [])
        if "quiz(" in cell.source and "remove-input" in tags:
            # the student edition's HTML is not executed: show the call, which a student runs in Jupyter
            cell.metadata["tags"] = tags = [t for t in tags if t != "remove-input"]
        if "check" in tags:
            cell.metadata["tags"] = [*tags, "raises-exception"]
            if expect_failures:
                cell.metadata["tags"].append("nbval-check-output")
                cell.execution_count = 1  # nbval compares only the outputs of cells that were run
                cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue=NOT_ANSWERED,
                                                       traceback=[])]
    nb.cells = kept
    return nb, removed


def solution_only(removed: list[str], kept: list[str]) -> set[str]:
    """Lines that only the removed solutions hold (a starter shares its ``def`` line, docstring and
    call with the solution; lines of 25 characters or fewer are too generic to count)."""
    shared = {line.strip() for source in kept for line in source.splitlines()}
    return {line.strip() for source in removed for line in source.splitlines()
            if len(line.strip()) > 25 and line.strip() not in shared}


def write_edition(out: Path, expect_failures: bool = False) -> list[Path]:
    """Write the student edition under ``out`` (mirroring the book's layout); return its notebooks."""
    book = ROOT / "book"
    target = out / "book"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(book, target, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    for name in COPIED:
        shutil.copy(ROOT / name, out / name)
    written = []
    for path in sorted(book.glob("*.ipynb")):
        nb, removed = strip(nbformat.read(path, as_version=4), expect_failures)
        secret = solution_only(removed, [c.source for c in nb.cells])
        nbformat.write(nb, target / path.name)
        text = (target / path.name).read_text()  # what a student receives, checked as written
        if "solution-start" in text or "solution-end" in text:
            raise SystemExit(f"{path.name}: a solution marker is left in the student copy")
        left = [line for line in secret if line in text]
        if left:
            raise SystemExit(f"{path.name}: solution text left in the student copy: {left[:3]}")
        written.append(target / path.name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the edition into (e.g. _build/student)")
    parser.add_argument("--expect-failures", action="store_true",
                        help="store each check's expected failure for nbval (the test copy)")
    args = parser.parse_args()
    written = write_edition(args.out, args.expect_failures)
    print(f"student edition: {len(written)} notebooks in {args.out / 'book'}")


if __name__ == "__main__":
    main()
