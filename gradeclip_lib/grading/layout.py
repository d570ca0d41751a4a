"""Where the submissions are: ``SUBMISSIONS/<student>/<chapter>.ipynb`` (one folder per student) or
``SUBMISSIONS/<student>__<chapter>.ipynb`` (all in one folder); a chapter file's name starts with its
two-digit number, as in the book (``02_grad_eclip_images.ipynb``, or just ``02.ipynb``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import GradEclipError

LAYOUT = ("SUBMISSIONS/<student>/<chapter>.ipynb (a folder per student) or SUBMISSIONS/<student>__<chapter>.ipynb, "
          "where <chapter> starts with the chapter's two digits as in the book, e.g. "
          "SUBMISSIONS/ada/02_grad_eclip_images.ipynb")
CHAPTER = re.compile(r"^(?P<chapter>\d{2})(?:[_\-. ].*)?$")


class LayoutError(GradEclipError, ValueError):
    """The submissions folder is not laid out as the grader expects; the message says what to change."""


@dataclass(frozen=True)
class Submission:
    """One student's notebook for one chapter."""

    student: str
    chapter: str
    path: Path


def _skipped(path: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in path.parts)


def _chapter(stem: str, path: Path, root: Path) -> str:
    match = CHAPTER.match(stem)
    if not match:
        raise LayoutError(f"{path.relative_to(root)}: a chapter notebook's name must start with the chapter's two "
                          f"digits (e.g. 02_grad_eclip_images.ipynb); rename it. Expected layout: {LAYOUT}")
    return match["chapter"]


def find_submissions(root: str | Path) -> list[Submission]:
    """Every submitted notebook under ``root``, sorted by student and chapter; a ``LayoutError`` says what to
    rename or move when the folder does not follow the layout."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root} is not a folder. Expected layout: {LAYOUT}")
    found: dict[tuple[str, str], Submission] = {}
    for path in sorted(root.rglob("*.ipynb")):
        rel = path.relative_to(root)
        if _skipped(rel):  # .ipynb_checkpoints and other hidden copies
            continue
        if len(rel.parts) == 2:
            student, chapter = rel.parts[0], _chapter(path.stem, path, root)
        elif len(rel.parts) == 1:
            student, sep, name = path.stem.partition("__")
            if not sep or not student:
                raise LayoutError(f"{rel}: a notebook directly in {root} must be named <student>__<chapter>.ipynb "
                                  f"(two underscores), or be moved into a folder named after its student. "
                                  f"Expected layout: {LAYOUT}")
            chapter = _chapter(name, path, root)
        else:
            raise LayoutError(f"{rel}: too deep; put each student's notebooks directly in their folder. "
                              f"Expected layout: {LAYOUT}")
        key = (student, chapter)
        if key in found:
            raise LayoutError(f"{student} has two notebooks for chapter {chapter}: {found[key].path.relative_to(root)} "
                              f"and {rel}; keep the one to grade.")
        found[key] = Submission(student, chapter, path)
    if not found:
        raise LayoutError(f"no notebook (.ipynb) found in {root}. Expected layout: {LAYOUT}")
    return [found[k] for k in sorted(found)]


def reference_notebook(chapter: str, book: Path | None) -> Path | None:
    """The book's notebook of a chapter (``book/02_*.ipynb``), or None when there is none."""
    if book is None:
        return None
    matches = sorted(Path(book).glob(f"{chapter}_*.ipynb"))
    return matches[0] if matches else None
