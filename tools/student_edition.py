"""Write the student edition of the book: the chapters without solutions, instructor checks or answers.

    python tools/student_edition.py OUT [--outputs EXECUTED] [--release 5.2,7.1] [--expect-failures]

For each chapter it removes every gated solution (the cells from a ``{solution-start}`` marker to its
``{solution-end}``, both included) and every cell tagged ``solution``; removes the ``assert`` statements
of the cells hidden in the book (``remove-cell``: the instructor's checks that the prose still holds,
which would fail when a student changes a seed) and keeps their MyST glue, dropping a hidden cell that
glues nothing; rewrites the sentences that point to removed content ("open the worked answer"); shows
the quiz cells' code; and tags each self-check cell (tag ``check``) ``raises-exception``, so "Run all"
reaches the end while a check fails until its exercise is done.

The teacher's page is not copied and the quizzes are copied encoded (base64: their answers are not in
plain text, though a determined student can decode them; ``gl.book.quiz`` reads either form).

``--outputs EXECUTED``: a folder of executed instructor chapters (``_build/check/book`` after
``make test``, ``_build/jupyter_execute/book`` after ``make book``); every kept cell gets its outputs
there (the figures of the HTML edition), except the self-checks and the cells after a solution,
which would show what a correct answer gives, and the prose's ``{glue:text}`` roles become the
numbers they show, so that a student reads them in Jupyter too. Refused when a cell's code differs
(an older run).

``--release 5.2,7.1``: also writes the worked answer, code solution or discussion of just those
exercises, one page each (``book/answer-5-2.ipynb``), with their outputs, listed in the edition's
table of contents.

``--expect-failures`` stores, in each check cell, the error it must raise on an untouched starter
(``AssertionError``, "No answer yet ..."), tagged for nbval to compare: the copy `make test` runs.
Finally the edition is checked: no line of an unreleased solution, no solution marker, no reference to
the teacher's page and no sentence pointing to removed content is left.
"""

from __future__ import annotations

import argparse
import ast
import base64
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from myst_nb.core.variables import format_plain_text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gradeclip_lib.exercises import NOT_ANSWERED  # noqa: E402

TEACHER_PAGE = "teaching.md"
# what a sentence of the full book says about content the student edition removes, and what it says instead
STUDENT_WORDING = {
    "Then open the worked answer.": "Then compare with the worked answer when your teacher releases it.",
    "Write down what you find before reading the discussion.":
        "Write down what you find; your teacher can release a discussion of what students usually find.",
}
# what the intro says about the teacher's page, which students do not get
STUDENT_PAGES = {
    r";\s+the\s+\[teacher's page\]\(teaching\.md\)\s+says\s+how\s+to\s+use\s+them\s+in\s+a\s+course\.": ".",
}
# phrases that would point a student to content their edition does not have
POINTERS = re.compile(r"open the worked answer|before\s+reading\s+the\s+discussion|first exercise|"
                      r"teaching\.md|teacher's page|solution below", re.IGNORECASE)
# a cell hidden in the book that checks the prose (asserts) or hands it its numbers (MyST glue)
INSTRUCTOR_CELL = re.compile(r"\bassert\b|\bglue\(")
EXERCISE = re.compile(r"^`{3,}\{exercise\}\s+(\d+\.\d+)\s+(.*)$", re.MULTILINE)


def is_marker(cell, kind: str) -> bool:
    return cell.cell_type == "markdown" and cell.source.lstrip("`").startswith(f"{{{kind}}}")


def exercise_number(cell) -> str | None:
    """'5.2' for the cell that states exercise 5.2, else None."""
    match = EXERCISE.match(cell.source) if cell.cell_type == "markdown" else None
    return match.group(1) if match else None


def only_asserts(statement: ast.stmt) -> bool:
    """An ``assert``, or a loop, condition or ``with`` whose every branch holds only asserts."""
    if isinstance(statement, ast.Assert):
        return True
    if isinstance(statement, ast.For | ast.While | ast.If | ast.With):
        branches = [*statement.body, *getattr(statement, "orelse", [])]
        return all(only_asserts(s) for s in branches)
    return False


def without_asserts(source: str) -> str:
    """``source`` without its ``assert`` statements, and without the loops and conditions that held only
    asserts (a function body left empty gets a ``pass``)."""
    lines = source.splitlines()
    drop: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if not isinstance(body, list) or not body or not isinstance(body[0], ast.stmt):
                continue
            gone = [s for s in body if only_asserts(s)]
            for statement in gone:
                if lines[statement.lineno - 1][:statement.col_offset].strip():
                    raise ValueError(f"an assert shares its line with other code: {lines[statement.lineno - 1]!r}")
                drop.update(range(statement.lineno - 1, statement.end_lineno))
            if gone and len(gone) == len(body) and not isinstance(node, ast.Module) and not only_asserts(node):
                first = gone[0]
                lines[first.lineno - 1] = " " * first.col_offset + "pass"
                drop.discard(first.lineno - 1)
    return "\n".join(line for i, line in enumerate(lines) if i not in drop).rstrip() + "\n"


def student_hidden_cell(cell) -> bool:
    """Strip the instructor's asserts from a cell hidden in the book; False when it then glues nothing."""
    cell.source = without_asserts(cell.source).rstrip("\n")
    return "glue(" in cell.source


def reworded(text: str) -> str:
    """The student's wording of a Markdown cell (a sentence may be wrapped over lines)."""
    for old, new in STUDENT_WORDING.items():
        text = re.sub(r"\s+".join(map(re.escape, old.split())), new, text)
    return text


@dataclass
class Answer:
    """A released exercise: its statement and the cells of its worked answer, solution or discussion."""

    number: str
    title: str
    statement: str
    cells: list = field(default_factory=list)


def split_chapter(nb) -> tuple[list, list[str], dict[str, Answer], set[str]]:
    """The student's cells, the removed sources, each exercise's answer (by number), and the ids of the
    cells that follow a solution in its exercise (their outputs would show what a right answer gives)."""
    kept, removed, answers, after_solution = [], [], {}, set()
    inside, current, after = False, None, False
    for cell in nb.cells:
        number = exercise_number(cell)
        if number:
            current = answers[number] = Answer(number, EXERCISE.match(cell.source).group(2), cell.source)
            after = False
        if is_marker(cell, "solution-start"):
            if inside:
                raise ValueError("a {solution-start} inside another solution")
            inside = True
            removed.append(cell.source)
        elif is_marker(cell, "solution-end"):
            if not inside:
                raise ValueError("a {solution-end} without its {solution-start}")
            inside, after = False, True
            removed.append(cell.source)
        elif inside or "solution" in cell.metadata.get("tags", []):
            removed.append(cell.source)
            if current is not None:
                current.cells.append(cell)
        else:
            kept.append(cell)
            if after:
                after_solution.add(cell.get("id"))
    if inside:
        raise ValueError("a {solution-start} without its {solution-end}")
    return kept, removed, answers, after_solution


def strip(nb, expect_failures: bool = False) -> tuple[object, list[str]]:
    """The student copy of one notebook, and the source lines of what was removed."""
    kept, removed, _, _ = split_chapter(nb)
    cells = []
    for cell in kept:
        if cell.cell_type == "markdown":
            cell.source = reworded(cell.source)
            cells.append(cell)
            continue
        cell.outputs, cell.execution_count = [], None
        tags = cell.metadata.get("tags", [])
        if "remove-cell" in tags and INSTRUCTOR_CELL.search(cell.source) and not student_hidden_cell(cell):
            continue
        if "quiz(" in cell.source and "remove-input" in tags:
            # shown in the student's HTML too: the call a student runs in Jupyter
            cell.metadata["tags"] = tags = [t for t in tags if t != "remove-input"]
        if "check" in tags:
            cell.metadata["tags"] = [*tags, "raises-exception"]
            if expect_failures:
                cell.metadata["tags"].append("nbval-check-output")
                cell.execution_count = 1  # nbval compares only the outputs of cells that were run
                cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue=NOT_ANSWERED,
                                                       traceback=[])]
        cells.append(cell)
    nb.cells = cells
    return nb, removed


def copy_outputs(student, executed, name: str, withheld: set[str]) -> None:
    """Give the student's code cells the outputs of the executed instructor cells, except the self-checks
    and the ``withheld`` ones; refuse an executed copy whose code differs (an older run)."""
    by_id = {cell.get("id"): cell for cell in executed.cells if cell.cell_type == "code"}
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        source = by_id.get(cell.get("id"))
        if source is None or ("remove-cell" not in cell.metadata.get("tags", []) and source.source != cell.source):
            raise SystemExit(f"{name}: cell {cell.get('id')} differs from the executed copy: run `make book` "
                             "(or `make test`) again")
        if cell.get("id") in withheld or "check" in cell.metadata.get("tags", []):
            continue
        cell.outputs, cell.execution_count = source.outputs, source.execution_count


GLUE_ROLE = re.compile(r"\{glue:text\}`([^`]+)`")


def glued_values(executed) -> dict[str, str]:
    """Each MyST glue key of an executed chapter, and the text it glued."""
    values = {}
    for cell in executed.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            record = output.get("metadata", {}).get("scrapbook")
            text = output.get("data", {}).get(f"{record.get('mime_prefix', '')}text/plain") if record else None
            if text is not None:
                values[record["name"]] = text
    return values


def with_numbers(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``{glue:text}`` role replaced by the number it shows in the book (as MyST-NB
    formats it), so that the prose reads the same in Jupyter as on the page."""
    def number(match: re.Match) -> str:
        key, _, spec = match.group(1).partition(":")
        return format_plain_text(values[key], spec or "s") if key in values else match.group(0)

    return GLUE_ROLE.sub(number, text)


def answer_page(answer: Answer, chapter: str, executed) -> object:
    """A page of one released exercise: its statement, then its answer cells with the outputs they had, and
    the numbers of its prose as the chapter computed them."""
    by_id = {cell.get("id"): cell for cell in executed.cells}
    cells = [nbformat.from_dict(json.loads(json.dumps(cell))) for cell in answer.cells]
    for cell in cells:
        if cell.cell_type == "code" and cell.get("id") in by_id:
            cell.outputs, cell.execution_count = by_id[cell.get("id")].outputs, by_id[cell.get("id")].execution_count
    values = glued_values(executed)
    statement = answer.statement.split("\n", 1)[1]  # without the directive's line
    statement = re.sub(r"^:(label|nonumber):.*\n", "", statement, flags=re.MULTILINE).rstrip("`\n ")
    for sentence in STUDENT_WORDING:  # this page is what those sentences point to
        statement = re.sub(r"\s*" + r"\s+".join(map(re.escape, sentence.split())), "", statement)
    head = nbformat.v4.new_markdown_cell(
        f"# Answer to exercise {answer.number}\n\n```{{admonition}} {answer.number} {answer.title}\n"
        f"{statement.strip()}\n```\n\nThe code below uses the variables of the chapter's notebook: to run "
        "it, copy it there after the exercise.")
    kept = [head]
    for cell in cells:
        if cell.cell_type == "markdown":
            cell.source = with_numbers(cell.source, values)
        elif ("remove-cell" in cell.metadata.get("tags", []) and INSTRUCTOR_CELL.search(cell.source)
              and not student_hidden_cell(cell)):
            continue
        kept.append(cell)
    head.source = with_numbers(head.source, values)
    return nbformat.v4.new_notebook(cells=kept, metadata=executed.metadata)


def solution_only(removed: list[str], kept: list[str]) -> set[str]:
    """Lines that only the removed solutions hold (a starter shares its ``def`` line, docstring and
    call with the solution; lines of 25 characters or fewer are too generic to count)."""
    shared = {line.strip() for source in kept for line in source.splitlines()}
    return {line.strip() for source in removed for line in source.splitlines()
            if len(line.strip()) > 25 and line.strip() not in shared}


def encoded_quiz(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_pages(book: Path, target: Path) -> None:
    """The book's other pages, without the teacher's page; the quizzes encoded."""
    shutil.copytree(book, target, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", TEACHER_PAGE,
                                                                 "*.json"))
    for quiz in sorted((book / "quizzes").glob("*.json")):
        (target / "quizzes" / quiz.with_suffix(".quiz").name).write_text(encoded_quiz(quiz))
    for page in target.glob("*.md"):
        text = page.read_text()
        for pattern, new in STUDENT_PAGES.items():
            text = re.sub(pattern, new, text)
        page.write_text(text)


def write_toc(out: Path, answers: list[str]) -> None:
    """The book's table of contents without the teacher's page, and with the released answers."""
    lines = [line for line in (ROOT / "_toc.yml").read_text().splitlines()
             if f"book/{Path(TEACHER_PAGE).stem}" not in line]
    lines += [f"  - file: book/{name}" for name in answers]
    (out / "_toc.yml").write_text("\n".join(lines) + "\n")


def check_edition(target: Path, secret: dict[str, set[str]]) -> None:
    """Refuse an edition that still holds a solution line, a marker, or a pointer to removed content."""
    for page in sorted(target.rglob("*")):
        if page.suffix not in (".ipynb", ".md", ".json", ".quiz"):
            continue
        text = page.read_text()
        if "solution-start" in text or "solution-end" in text:
            raise SystemExit(f"{page.name}: a solution marker is left in the student copy")
        if page.suffix == ".json" and '"correct"' in text:
            raise SystemExit(f"{page.name}: quiz answers in plain text")
        if page.name.startswith("answer-"):
            continue
        left = [line for line in secret.get(page.name, ()) if line in text]
        if left:
            raise SystemExit(f"{page.name}: solution text left in the student copy: {left[:3]}")
        prose = text
        if page.suffix == ".ipynb":
            prose = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells if c.cell_type == "markdown")
        pointer = POINTERS.search(prose)
        if pointer:
            raise SystemExit(f"{page.name}: points to content the student edition removes: {pointer.group(0)!r}")


def parse_release(value: str) -> list[str]:
    numbers = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in numbers if not re.fullmatch(r"\d+\.\d+", n)]
    if bad:
        raise SystemExit(f"--release takes exercise numbers such as 5.2,7.1; got {bad}")
    return numbers


def write_edition(out: Path, expect_failures: bool = False, outputs: Path | None = None,
                  release: list[str] = ()) -> list[Path]:
    """Write the student edition under ``out`` (mirroring the book's layout); return its notebooks."""
    book = ROOT / "book"
    target = out / "book"
    if target.exists():
        shutil.rmtree(target)
    write_pages(book, target)
    shutil.copy(ROOT / "_config.yml", out / "_config.yml")
    if release and outputs is None:
        raise SystemExit("--release needs --outputs: an answer page shows what its code computed")
    written, secret, pages, found = [], {}, [], set()
    for path in sorted(book.glob("*.ipynb")):
        teacher = nbformat.read(path, as_version=4)
        executed = None
        if outputs is not None:
            if not (outputs / path.name).exists():
                raise SystemExit(f"{outputs / path.name} is missing: run `make book` (or `make test`) first, "
                                 "so the student edition can show what the chapters compute")
            executed = nbformat.read(outputs / path.name, as_version=4)
        _, _, answers, withheld = split_chapter(nbformat.from_dict(json.loads(json.dumps(teacher))))
        nb, removed = strip(teacher, expect_failures)
        if executed is not None:
            copy_outputs(nb, executed, path.name, withheld)
            values = glued_values(executed)
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source = with_numbers(cell.source, values)
                    if GLUE_ROLE.search(cell.source):
                        raise SystemExit(f"{path.name}: the executed copy glued no {GLUE_ROLE.search(cell.source)[0]}")
        secret[path.name] = solution_only(removed, [c.source for c in nb.cells])
        nbformat.write(nb, target / path.name)
        written.append(target / path.name)
        for number in release:
            if number in answers:
                found.add(number)
                name = f"answer-{number.replace('.', '-')}"
                nbformat.write(answer_page(answers[number], path.name, executed), target / f"{name}.ipynb")
                pages.append(name)
    missing = sorted(set(release) - found)
    if missing:
        raise SystemExit(f"no exercise numbered {', '.join(missing)} in the book")
    write_toc(out, pages)
    check_edition(target, secret)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the edition into (e.g. _build/student)")
    parser.add_argument("--outputs", type=Path, help="executed instructor chapters, for the edition's figures")
    parser.add_argument("--release", type=parse_release, default=[],
                        help="exercises whose answers to release, e.g. 5.2,7.1")
    parser.add_argument("--expect-failures", action="store_true",
                        help="store each check's expected failure for nbval (the test copy)")
    args = parser.parse_args()
    written = write_edition(args.out, args.expect_failures, args.outputs, args.release)
    released = f", answers to {', '.join(args.release)}" if args.release else ""
    print(f"student edition: {len(written)} notebooks in {args.out / 'book'}{released}")


if __name__ == "__main__":
    main()
