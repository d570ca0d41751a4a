"""The exercises' structure in every chapter, and the student edition made from it: no solution left,
every check kept and tagged to fail without stopping the notebook, no output."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("0*.ipynb"))


def load_tool():
    spec = importlib.util.spec_from_file_location("student_edition", ROOT / "tools" / "student_edition.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exercises(nb) -> list[str]:
    return [m for c in nb.cells if c.cell_type == "markdown"
            for m in re.findall(r"\{exercise\}.*\n:label: (\S+)", c.source)]


def solutions(nb) -> list[list]:
    """The cells of each gated solution, read independently of the tool."""
    found, current = [], None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            current = []
        elif cell.cell_type == "markdown" and "{solution-end}" in cell.source:
            found.append(current)
            current = None
        elif current is not None:
            current.append(cell)
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_three_kinds_of_exercise(path):
    nb = nbformat.read(path, as_version=4)
    labels = exercises(nb)
    chapter = path.stem[:2]
    assert labels == [f"ex-{chapter}-predict", f"ex-{chapter}-code", f"ex-{chapter}-open"]
    assert len(solutions(nb)) == 3  # a worked answer, a solution, a discussion
    checks = [c for c in nb.cells if "check" in c.metadata.get("tags", [])]
    assert len(checks) >= 1 and all("checks.check_" in c.source for c in checks)
    quiz = re.search(r'quiz\("(quizzes/[^"]+)"\)', "\n".join(c.source for c in nb.cells))
    questions = json.loads((ROOT / "book" / quiz.group(1)).read_text())
    for q in questions:  # every wrong option explains itself
        assert sum(a["correct"] for a in q["answers"]) == 1
        assert all(len(a["feedback"]) > 20 for a in q["answers"])


def test_the_student_edition_has_no_solution_and_failing_checks(tmp_path):
    tool = load_tool()
    written = tool.write_edition(tmp_path)
    assert [p.name for p in written] == [p.name for p in CHAPTERS]
    assert (tmp_path / "book" / "teaching.md").is_file() and (tmp_path / "_toc.yml").is_file()
    for original, copy in zip(CHAPTERS, written):
        teacher, student = nbformat.read(original, as_version=4), nbformat.read(copy, as_version=4)
        assert exercises(student) == exercises(teacher)
        text = copy.read_text()
        assert "solution-start" not in text and "solution-end" not in text
        kept = {line.strip() for c in student.cells for line in c.source.splitlines()}
        for cells in solutions(teacher):
            own = [line.strip() for c in cells for line in c.source.splitlines()
                   if len(line.strip()) > 25 and line.strip() not in kept]
            assert own and not any(line in text for line in own)
        for cell in student.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
        checks = [c for c in student.cells if "check" in c.metadata.get("tags", [])]
        assert checks and all("raises-exception" in c.metadata["tags"] for c in checks)
        quizzes = [c for c in student.cells if "quiz(" in c.source]
        assert quizzes and all("remove-input" not in c.metadata.get("tags", []) for c in quizzes)
        assert len(student.cells) < len(teacher.cells)


def test_the_test_copy_expects_each_check_to_fail_unanswered(tmp_path):
    from gradeclip_lib.exercises import NOT_ANSWERED

    tool = load_tool()
    for copy in tool.write_edition(tmp_path, expect_failures=True):
        checks = [c for c in nbformat.read(copy, as_version=4).cells if "check" in c.metadata.get("tags", [])]
        for cell in checks:
            assert "nbval-check-output" in cell.metadata["tags"]
            assert [(o.output_type, o.ename, o.evalue) for o in cell.outputs] == [
                ("error", "AssertionError", NOT_ANSWERED)]


def test_unbalanced_solution_markers_are_refused():
    tool = load_tool()
    start = nbformat.v4.new_markdown_cell("```{solution-start} ex-x\n:class: dropdown\n```")
    end = nbformat.v4.new_markdown_cell("```{solution-end}\n```")
    body = nbformat.v4.new_code_cell("answer = 42")
    for cells in ([start, body], [body, end]):
        with pytest.raises(ValueError, match="solution"):
            tool.strip(nbformat.v4.new_notebook(cells=cells))
    nb, removed = tool.strip(nbformat.v4.new_notebook(cells=[start, body, end, nbformat.v4.new_code_cell("x")]))
    assert [c.source for c in nb.cells] == ["x"] and "answer = 42" in removed


def test_a_quiz_is_interactive_on_the_page_and_a_pointer_in_the_pdf():
    from nbclient import NotebookClient

    from gradeclip_lib.book import QUIZ_NOTE

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'import gradeclip_lib as gl\ngl.book.quiz("quizzes/01_clip_attention.json")')])
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(ROOT / "book")}}).execute()
    outputs = nb.cells[0].outputs
    assert outputs and all(o.output_type == "display_data" for o in outputs)
    assert outputs[0].data["text/markdown"] == QUIZ_NOTE  # what the PDF (LaTeX builder) shows
    kinds = {k for o in outputs for k in o.data}
    assert {"text/html", "application/javascript"} <= kinds  # what the web page runs
    questions = json.loads((ROOT / "book" / "quizzes" / "01_clip_attention.json").read_text())
    assert questions[0]["question"][:30] in "".join(str(o.data.get("text/html", "")) +
                                                      str(o.data.get("application/javascript", ""))
                                                      for o in outputs)
