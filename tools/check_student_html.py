"""Check the built HTML of the student edition: no answer where none was released, the released ones whole,
and every figure the chapters computed outside the exercises' answers.

    python tools/check_student_html.py EDITION [--released 5.2,7.1]

EDITION is the folder `tools/student_edition.py` wrote and jupyter-book built (EDITION/_build/html). The
solutions are read from the instructor chapters in book/, independently of the tool that removed them:
every code line (over 25 characters) and every run of six plain words of a worked answer, code solution or
discussion must be absent from the chapter's page and, for a released exercise, present on its answer
page. A chapter's page must show at least as many images as the executed instructor chapter (--outputs) has
figures outside the exercises' answers.
Exit 1 with the problems found.
"""

from __future__ import annotations

import argparse
import html.parser
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
EXERCISE = re.compile(r"^`{3,}\{exercise\}\s+(\d+\.\d+)", re.MULTILINE)
RUN = 6  # words in a row that identify a sentence of a discussion


class Text(html.parser.HTMLParser):
    """The visible text of a page (scripts and styles left out), and its number of images."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.images = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "img":
            self.images += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


# what Sphinx's smart quotes make of the source's ASCII
TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "--",
                            "\u2014": "---", "\u2026": "..."})


def normalised(text: str) -> str:
    return " ".join(text.translate(TYPOGRAPHY).split())


def read_page(path: Path) -> tuple[str, int]:
    """The page's text with its whitespace and typography normalised, and its number of images."""
    parser = Text()
    parser.feed(path.read_text())
    return normalised("".join(parser.parts)), parser.images


def answers(nb) -> dict[str, list]:
    """Each exercise's solution cells, by number, read from the markers."""
    found, number, inside = {}, None, False
    for cell in nb.cells:
        match = EXERCISE.match(cell.source) if cell.cell_type == "markdown" else None
        if match:
            number = match.group(1)
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            inside = True
        elif cell.cell_type == "markdown" and "{solution-end}" in cell.source:
            inside = False
        elif inside and "remove-cell" not in cell.metadata.get("tags", []):
            found.setdefault(number, []).append(cell)
    return found


def fragments(cells, kept: set[str]) -> list[str]:
    """What identifies these cells on a page: code lines, and runs of plain words of their prose."""
    found = []
    for cell in cells:
        for line in cell.source.splitlines():
            line = line.strip()
            if cell.cell_type == "code":
                if len(line) > 25 and line not in kept and not line.startswith("#"):
                    found.append(normalised(line))
                continue
            line = re.sub(r"^(#+|>|\d+\.|[-*+])\s+", "", line)  # a heading's, quote's or list item's mark
            plain = re.sub(r"\{[\w:-]+\}`[^`]*`|\$[^$]*\$|`[^`]*`|\[([^]]*)\]\([^)]*\)", "|", line)
            for run in re.split(r"[|*_]", plain):
                words = run.split()
                if len(words) >= RUN and " ".join(words) not in kept:
                    found.append(normalised(" ".join(words)))
    return found


def outside_answers(nb):
    """The cells of an executed instructor chapter that are no exercise's answer: outside the solutions,
    not a self-check, not after a solution in its exercise (those show what a right answer gives)."""
    cells, inside, after = [], False, False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and EXERCISE.match(cell.source):
            after = False
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            inside = True
        elif cell.cell_type == "markdown" and "{solution-end}" in cell.source:
            inside, after = False, True
        elif not inside and not after and "check" not in cell.metadata.get("tags", []):
            cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


HIDDEN_OUTPUT = {"remove-output", "remove-cell"}  # tags whose cell's outputs no page shows


def image_outputs(nb) -> int:
    """The figures a page of ``nb`` shows: image outputs of code cells whose output is not removed."""
    return sum(1 for cell in nb.cells if cell.cell_type == "code"
               and not HIDDEN_OUTPUT & set(cell.metadata.get("tags", []))
               for output in cell.get("outputs", [])
               if "image/png" in output.get("data", {}) or "image/svg+xml" in output.get("data", {}))


def problems(edition: Path, released: list[str], executed: Path | None) -> list[str]:
    found = []
    pages = edition / "_build" / "html" / "book"
    if (pages / "teaching.html").exists():
        found.append("the teacher's page is in the student edition")
    for chapter in sorted((ROOT / "book").glob("0*.ipynb")):
        teacher = nbformat.read(chapter, as_version=4)
        student = nbformat.read(edition / "book" / chapter.name, as_version=4)
        kept = {" ".join(line.split()) for c in student.cells for line in c.source.splitlines()}
        text, images = read_page(pages / chapter.with_suffix(".html").name)
        for number, cells in answers(teacher).items():
            marks = fragments(cells, kept)
            if not marks:
                found.append(f"{chapter.name}: exercise {number}'s answer has nothing to look for")
            left = [m for m in marks if m in text]
            if left:
                found.append(f"{chapter.name}: answer {number} on the chapter's page: {left[0]!r}")
            answer_page = pages / f"answer-{number.replace('.', '-')}.html"
            if number in released and not answer_page.exists():
                found.append(f"{answer_page.name}: released but not built")
            elif number in released:
                shown, _ = read_page(answer_page)
                missing = [m for m in marks if m not in shown]
                if missing:
                    found.append(f"{answer_page.name}: answer {number} incomplete, no {missing[0]!r}")
            elif answer_page.exists():
                found.append(f"{answer_page.name}: written but not released")
        expected = image_outputs(student)
        if executed is not None:
            expected = max(expected, image_outputs(outside_answers(nbformat.read(executed / chapter.name,
                                                                                  as_version=4))))
        if images < expected:
            found.append(f"{chapter.name}: {images} images on the page, {expected} figures outside the answers")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edition", type=Path)
    parser.add_argument("--released", default="", help="the exercises whose answers were released, e.g. 5.2,7.1")
    parser.add_argument("--outputs", type=Path, help="the executed instructor chapters the edition was made from")
    args = parser.parse_args()
    released = [n for n in args.released.split(",") if n]
    found = problems(args.edition, released, args.outputs)
    for problem in found:
        print(problem)
    if found:
        sys.exit(1)
    print(f"student edition's HTML: no unreleased answer, {len(released)} released answers whole, figures shown")


if __name__ == "__main__":
    main()
