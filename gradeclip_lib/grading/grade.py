"""Grade a folder of submissions: run each notebook (a few at a time with ``jobs``), read its checks, and write
the gradebook and the feedback files as each notebook finishes."""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from .gradebook import REPORTS, Gradebook, read_gradebook, report_rows, score, write_feedback
from .layout import Submission, find_submissions, reference_notebook
from .notebook import find_exercises, use_reference_checks
from .offline import offline_env
from .results import Outcome, Row, read_results
from .rubric import Rubric, load_rubric
from .running import FINISHED, STOP, run_notebook_async, take_signals

BOOK = Path(__file__).resolve().parents[2] / "book"
RUBRIC = "rubrics.json"


def default_book() -> Path | None:
    """The book's folder next to the library (a clone of the repository), or None."""
    return BOOK if BOOK.is_dir() else None


def _prepare(sub: Submission, book: Path | None) -> tuple[nbformat.NotebookNode | None, dict | None, str]:
    """The notebook to run (its check cells the book's), the book's notebook, or why it cannot run."""
    try:
        nb = nbformat.read(sub.path, as_version=4)
    except Exception as err:  # not JSON, not a notebook: recorded for this student, the others go on
        return None, None, f"could not read the notebook: {type(err).__name__}: {err}"
    ref_path = reference_notebook(sub.chapter, book)
    reference = nbformat.read(ref_path, as_version=4) if ref_path else None
    return (use_reference_checks(nb, reference) if reference else nb), reference, ""


def _outcomes(nb: nbformat.NotebookNode | None, reference: dict | None, problem: str) -> list[Outcome]:
    """The results of the run, plus the book's exercises that the submission lacks."""
    found = read_results(nb) if nb is not None else []
    labels = {o.exercise.label for o in found}
    for ex in find_exercises(reference) if reference else []:
        if ex.label not in labels:
            found.append(Outcome(ex, False if ex.checks else None, problem or "exercise not found in the notebook"))
    return found


async def _grade_all(subs: list[Submission], out: Path, rubric: Rubric, book: Path | None, cwd: Path | None,
                     timeout: float, jobs: int, kernel: str, progress: bool,
                     kept: list[Row]) -> tuple[list[Row], Counter]:
    STOP.set(asyncio.current_task())  # Ctrl-C stops the run and kills its kernels
    take_signals()
    gradebook, statuses = Gradebook(out, kept), Counter()
    by_student: dict[str, list[Row]] = {}
    for row in kept:
        by_student.setdefault(row.student, []).append(row)
    slots = asyncio.Semaphore(max(jobs, 1))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gradeclip-grading-") as tmp, \
            (out / "kernels.log").open("a", encoding="utf-8") as log:
        env = offline_env(tmp)

        async def one(sub: Submission):
            nb, reference, problem = _prepare(sub, book)
            if nb is not None:
                async with slots:
                    log.write(f"--- {sub.student} {sub.path.name}\n")
                    log.flush()
                    await run_notebook_async(nb, timeout, cwd or sub.path.parent, env, kernel, log=log)
            return sub, nb, reference, problem

        bar = tqdm(total=len(subs), desc="grading", unit="notebook", disable=not progress)
        for next_done in asyncio.as_completed([one(s) for s in subs]):
            sub, nb, reference, problem = await next_done
            if nb is not None:
                executed = out / "executed" / sub.student / sub.path.name
                executed.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, executed)
                statuses[nb.metadata["grading"]["status"]] += 1
            else:
                statuses["could not read"] += 1
            rows = score(sub.student, sub.chapter, _outcomes(nb, reference, problem), rubric)
            gradebook.add(rows)
            by_student.setdefault(sub.student, []).extend(rows)
            write_feedback(out, sub.student, sorted(by_student[sub.student], key=lambda r: r.chapter))
            bar.set_postfix_str(f"{sub.student} {sub.chapter}")
            bar.update()
        bar.close()
    for student, rows in by_student.items():
        extra = report_rows(student, rubric)
        gradebook.add(extra)
        write_feedback(out, student, sorted(rows, key=lambda r: r.chapter) + extra)
    gradebook.finish()
    return gradebook.rows, statuses


def grade(submissions: str | Path, out: str | Path, timeout: float = 600, rubric: str | Path | Rubric | None = None,
          book: str | Path | None = None, cwd: str | Path | None = None, jobs: int = 1, kernel: str = "python3",
          progress: bool = True, resume: bool = False) -> tuple[list[Row], Counter]:
    """Grade every notebook under ``submissions`` into ``out`` (gradebook.csv, feedback/, executed/); return the
    rows and how many runs finished, timed out or died. ``book``: the chapters whose check cells and exercises are
    the reference (default: the repository's book/); ``rubric``: default ``book/rubrics.json``; ``cwd``: where
    the notebooks run (default: ``book``); ``resume``: keep the rows of ``out/gradebook.csv`` and grade only the
    notebooks it lacks."""
    subs = find_submissions(submissions)
    kept: list[Row] = []
    if resume and (Path(out) / "gradebook.csv").is_file():
        kept = [r for r in read_gradebook(Path(out) / "gradebook.csv") if r.chapter != REPORTS]
        done = {(r.student, r.chapter) for r in kept}
        subs = [s for s in subs if (s.student, s.chapter) not in done]
    book = Path(book) if book is not None else default_book()
    if rubric is None and book is not None and (book / RUBRIC).is_file():
        rubric = book / RUBRIC
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    cwd = Path(cwd) if cwd is not None else book
    try:
        return asyncio.run(_grade_all(subs, Path(out), rubric, book, cwd, timeout, jobs, kernel, progress, kept))
    except asyncio.CancelledError:  # Ctrl-C or SIGTERM: the kernels are gone, the rows written so far stay
        raise KeyboardInterrupt from None


__all__ = ["FINISHED", "default_book", "grade"]
