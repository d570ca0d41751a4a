"""The exercises' structure in every chapter, and the student edition made from it: no solution left,
every check kept and tagged to fail without stopping the notebook, no output."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("0*.ipynb"))


def load_tool():
    spec = importlib.util.spec_from_file_location("student_edition", ROOT / "tools" / "student_edition.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
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
    assert not (tmp_path / "book" / "teaching.md").exists() and "teaching" not in (tmp_path / "_toc.yml").read_text()
    assert "teaching.md" not in (tmp_path / "book" / "intro.md").read_text()
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


def test_the_quizzes_are_copied_encoded_and_still_load(tmp_path):
    from gradeclip_lib.book import quiz_questions

    load_tool().write_edition(tmp_path)
    for original in sorted((ROOT / "book" / "quizzes").glob("*.json")):
        encoded = tmp_path / "book" / "quizzes" / original.with_suffix(".quiz").name
        assert not (tmp_path / "book" / "quizzes" / original.name).exists()
        assert '"correct"' not in encoded.read_text()
        # the chapter's call names the .json; the student's copy finds the encoded one beside it
        assert quiz_questions(tmp_path / "book" / "quizzes" / original.name) == json.loads(original.read_text())


def test_without_asserts_keeps_what_the_cell_computes():
    tool = load_tool()
    source = """x = 1  # kept
assert x == 2, "the instructor's check"
for k in (1, 2):
    assert k > 5
for k in (1, 2):
    x += k
    assert x > 50


def f():
    assert False


y = [
    x,
]
assert (
    y == 0
)
"""
    student = tool.without_asserts(source)
    assert "assert" not in student and "for k in (1, 2):\n    x += k" in student
    scope = {}
    exec(student, scope)  # the instructor's asserts would fail; the student's copy runs
    assert scope["y"] == [4] and scope["f"]() is None


def test_hidden_cells_keep_their_glue_and_lose_their_asserts(tmp_path):
    tool = load_tool()
    for original, copy in zip(CHAPTERS, tool.write_edition(tmp_path)):
        teacher = nbformat.read(original, as_version=4)
        in_solutions = {c.id for cells in solutions(teacher) for c in cells}
        student = {c.id: c for c in nbformat.read(copy, as_version=4).cells}
        hidden = [c for c in teacher.cells if "remove-cell" in c.metadata.get("tags", []) and c.id not in in_solutions]
        for cell in hidden:
            glued = re.findall(r'glue\(\s*f?"[^"]+"', cell.source)
            if not glued and "assert" in cell.source:  # only the instructor's checks: gone
                assert cell.id not in student
                continue
            if not glued:  # hidden for another reason (the Colab cell): as it is
                assert student[cell.id].source == cell.source
                continue
            assert "assert" not in student[cell.id].source
            assert glued == re.findall(r'glue\(\s*f?"[^"]+"', student[cell.id].source)


def test_no_sentence_points_to_what_the_edition_removes(tmp_path):
    tool = load_tool()
    for copy in tool.write_edition(tmp_path):
        prose = "\n".join(c.source for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "markdown")
        assert not tool.POINTERS.search(prose)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Then open\nthe worked answer.")])
    student, _ = tool.strip(nb)
    assert student.cells[0].source == "Then compare with the worked answer when your teacher releases it."
    book = tmp_path / "refused"
    (book / "book").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("See the solution below.")]),
                   book / "book" / "x.ipynb")
    with pytest.raises(SystemExit, match="points to content"):
        tool.check_edition(book / "book", {})


def executed_copies(folder: Path) -> Path:
    """The chapters as if executed: each code cell prints its id; the first glues 0.123456 under every key
    the prose reads."""
    folder.mkdir()
    prefix = "application/papermill.record/"  # as myst_nb.glue stores it
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        keys = sorted(set(re.findall(r"\{glue:text\}`([^`:]+)", prose)))
        glued = [nbformat.v4.new_output("display_data", data={f"{prefix}text/plain": "0.123456"},
                                        metadata={"scrapbook": {"name": key, "mime_prefix": prefix}}) for key in keys]
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"output of {cell.id}\n")]
                cell.outputs += glued
                glued = []
                cell.execution_count = 1
        nbformat.write(nb, folder / path.name)
    return folder


def test_the_edition_shows_the_outputs_of_every_cell_but_the_answers(tmp_path):
    tool = load_tool()
    executed = executed_copies(tmp_path / "executed")
    written = tool.write_edition(tmp_path / "edition", outputs=executed)
    for original, copy in zip(CHAPTERS, written):
        _, _, _, withheld = tool.split_chapter(nbformat.read(original, as_version=4))
        for cell in nbformat.read(copy, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            shown = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            if "check" in cell.metadata.get("tags", []) or cell.id in withheld:
                assert cell.outputs == []
            else:
                assert shown == f"output of {cell.id}\n"
    prose = "\n".join(c.source for c in nbformat.read(written[0], as_version=4).cells if c.cell_type == "markdown")
    teacher = "\n".join(c.source for c in nbformat.read(CHAPTERS[0], as_version=4).cells if c.cell_type == "markdown")
    literal = re.findall(r"\{glue:text\}`([^`:{]+)(?::([^`]*))?`", teacher)
    assert literal and not any(f"{{glue:text}}`{key}" in prose for key, _ in literal)  # the numbers, not the roles
    assert all(format(0.123456, spec or "s") in prose for key, spec in literal if spec.endswith("f"))
    stale = nbformat.read(executed / CHAPTERS[0].name, as_version=4)
    code = next(c for c in stale.cells if c.cell_type == "code" and "remove-cell" not in c.metadata.get("tags", []))
    code.source += "\n# edited since"
    nbformat.write(stale, executed / CHAPTERS[0].name)
    with pytest.raises(SystemExit, match="differs from the executed copy"):
        tool.write_edition(tmp_path / "stale", outputs=executed)


def test_released_answers_are_written_for_just_those_exercises(tmp_path):
    tool = load_tool()
    executed = executed_copies(tmp_path / "executed")
    tool.write_edition(tmp_path / "edition", outputs=executed, release=["2.2", "7.3"])
    pages = sorted(p.name for p in (tmp_path / "edition" / "book").glob("answer-*.ipynb"))
    assert pages == ["answer-2-2.ipynb", "answer-7-3.ipynb"]
    toc = (tmp_path / "edition" / "_toc.yml").read_text()
    assert "book/answer-2-2" in toc and "book/answer-7-3" in toc
    released = (("02_grad_eclip_images", "2.2", "answer-2-2"), ("07_faithfulness", "7.3", "answer-7-3"))
    for chapter, number, page in released:
        teacher = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
        _, _, answers, _ = tool.split_chapter(teacher)
        text = (tmp_path / "edition" / "book" / f"{page}.ipynb").read_text()
        answer = nbformat.reads(text, as_version=4)
        assert answer.cells[0].source.startswith(f"# Answer to exercise {number}")
        assert not tool.POINTERS.search(answer.cells[0].source)
        for cell in answers[number].cells:  # every line of the answer is there (asserts aside), with outputs
            lines = [line for line in cell.source.splitlines() if "assert" not in line and "glue:text" not in line]
            assert all(json.dumps(line)[1:-1] in text for line in lines)
            if cell.cell_type == "code" and "remove-cell" not in cell.metadata.get("tags", []):
                assert f"output of {cell.id}" in text
    with pytest.raises(SystemExit, match="needs --outputs"):
        tool.write_edition(tmp_path / "no-outputs", release=["2.2"])
    with pytest.raises(SystemExit, match="no exercise numbered 9.9"):
        tool.write_edition(tmp_path / "unknown", outputs=executed, release=["9.9"])


def test_the_html_check_counts_only_the_figures_a_page_shows():
    """A figure of a cell tagged remove-output (or remove-cell) is on no page: the check of the student
    HTML must not expect it (chapter 2 has one)."""
    spec = importlib.util.spec_from_file_location("check_student_html", ROOT / "tools" / "check_student_html.py")
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)
    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    cells = [nbformat.v4.new_code_cell("plot()", outputs=[figure]) for _ in range(4)]
    cells[1].metadata["tags"] = ["remove-output"]
    cells[2].metadata["tags"] = ["remove-cell"]
    cells[3].metadata["tags"] = ["remove-input"]  # its figure is shown
    assert checker.image_outputs(nbformat.v4.new_notebook(cells=cells)) == 2
