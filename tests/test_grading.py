"""The grade command: layout, rubric, result reading and the gradebook without a kernel; then five submissions
made from the student edition's chapter 1 (complete, partial, crashing, looping, killing its kernel) graded in
one run."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from gradeclip_lib.grading import LayoutError, find_exercises, find_submissions, load_rubric, read_results
from gradeclip_lib.grading.gradebook import COLUMNS, Gradebook, feedback, report_rows, score
from gradeclip_lib.grading.notebook import use_reference_checks
from gradeclip_lib.grading.rubric import Rubric, RubricError, parse_rubric

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CHAPTER = "01_clip_attention.ipynb"  # the quickest chapter to run (about 13 s in full on 2 cores)
# seconds per notebook in the end-to-end test: a submission needs about 10 s on 2 idle cores (the library's import
# takes most of it) and three times that on a busy machine; the looping one takes all of it, beside the others
TIMEOUT = 45


# ---- a small notebook in the book's exercise pattern, for the tests without a kernel

def _exercise(number: str, kind: str, label: str) -> nbformat.NotebookNode:
    return new_markdown_cell(f"````{{exercise}} {number} {kind}: a title\n:label: {label}\n:nonumber:\n\nText.\n````")


def _check(source: str = "checks.check(answer)", outputs: list | None = None, ran: bool = True):
    cell = new_code_cell(source, metadata={"tags": ["check", "raises-exception"]})
    cell.outputs, cell.execution_count = outputs or [], 3 if ran else None
    return cell


def _error(ename: str, evalue: str):
    return new_output("error", ename=ename, evalue=evalue, traceback=[])


def _notebook(*checks, status: dict | None = None, setup_error: bool = False) -> nbformat.NotebookNode:
    setup = new_code_cell("import gradeclip_lib as gl", execution_count=1)
    if setup_error:
        setup.outputs = [_error("RuntimeError", "broken setup")]
    nb = new_notebook(cells=[setup, _exercise("1.1", "Predict", "ex-01-predict"), new_code_cell("x = 1"),
                             _exercise("1.2", "Code", "ex-01-code"), new_code_cell("answer = ..."), *checks,
                             _exercise("1.3", "Explore", "ex-01-open")])
    if status:
        nb.metadata["grading"] = status
    return nb


def test_exercises_and_their_checks_are_found():
    nb = _notebook(_check(), _check("print(1)"))
    found = find_exercises(nb)
    assert [(e.number, e.label, e.kind, e.checks) for e in found] == [
        ("1.1", "ex-01-predict", "predict", []), ("1.2", "ex-01-code", "code", [5, 6]),
        ("1.3", "ex-01-open", "explore", [])]


def test_results_are_read_from_the_executed_notebook():
    stdout = new_output("stream", name="stdout", text="Correct: your maps equal the library's.\nother\n")
    passed = read_results(_notebook(_check(outputs=[stdout])))
    assert [(o.exercise.number, o.passed, o.message) for o in passed] == [
        ("1.1", None, ""), ("1.2", True, "Correct: your maps equal the library's."), ("1.3", None, "")]
    wrapped = new_output("stream", name="stdout", text="Correct: your maps equal\n  the library's.\nother\n  x\n")
    assert read_results(_notebook(_check(outputs=[wrapped])))[1].message == "Correct: your maps equal the library's."
    wrong = _check(outputs=[_error("AssertionError", "No answer\n yet")])
    hint = read_results(_notebook(_check(outputs=[stdout]), wrong))
    assert (hint[1].passed, hint[1].message) == (False, "No answer yet")  # the first failure, on one line
    crashed = read_results(_notebook(_check(outputs=[_error("NameError", "name 'checks' is not defined")]),
                                     setup_error=True))
    assert crashed[1].message == ("NameError: name 'checks' is not defined (after an error in cell 1: "
                                  "RuntimeError: broken setup)")
    late = read_results(_notebook(_check(ran=False), status={"status": "timed out", "cell": 4, "timeout": 30}))
    assert (late[1].passed, late[1].message) == (False, "timed out: the notebook ran past 30 s in cell 5")
    died = read_results(_notebook(_check(ran=False), status={"status": "kernel died", "cell": 0}))
    assert died[1].message.startswith("the kernel died in cell 1")
    assert read_results(_notebook(_check(ran=True)))[1].message == "passed"  # a check that prints nothing


def test_the_book_s_check_cells_replace_edited_or_deleted_ones():
    reference = _notebook(_check("checks.check_attention(answer)"))
    edited = use_reference_checks(_notebook(_check("pass  # the student emptied it")), reference)
    deleted = use_reference_checks(_notebook(), reference)
    for nb in (edited, deleted):
        assert [nb.cells[i].source for i in find_exercises(nb)[1].checks] == ["checks.check_attention(answer)"]
        assert nb.cells[4].source == "answer = ..."  # the student's cells stay where they were


def test_an_exercise_the_submission_lost_is_recorded():
    from gradeclip_lib.grading.grade import _outcomes

    reference = _notebook(_check())
    submitted = _notebook(_check(outputs=[_error("AssertionError", "hint")]))
    del submitted.cells[3:6]  # the student deleted exercise 1.2 with its starter and check
    found = {o.exercise.number: (o.passed, o.message) for o in _outcomes(submitted, reference, "")}
    assert found["1.2"] == (False, "exercise not found in the notebook") and found["1.1"] == (None, "")


def test_rubric_scoring_and_gradebook(tmp_path):
    rubric = parse_rubric({"default_points": 1, "exercises": {
        "1.1": {"criteria": [{"criterion": "a prediction", "points": 1}, {"criterion": "compared", "points": 1}]},
        "1.2": {"points": 3}}, "reports": {"review": {"title": "A review", "criteria": [
            {"criterion": "one claim", "points": 4}]}}})
    stdout = new_output("stream", name="stdout", text="Correct: equal\n")
    rows = score("ada", "01", read_results(_notebook(_check(outputs=[stdout]))), rubric)
    rows += score("bob", "01", read_results(_notebook(_check(outputs=[_error("AssertionError", "swap")]))), rubric)
    rows += report_rows("ada", rubric)
    book = Gradebook(tmp_path)
    book.add(rows[3:])
    assert len(list(csv.reader(book.path.open()))) == 1 + len(rows[3:])  # written as soon as added
    book.add(rows[:3])
    lines = list(csv.DictReader(book.finish().open()))
    assert list(lines[0]) == COLUMNS
    assert [(r["student"], r["exercise"], r["passed"], r["points"], r["max_points"]) for r in lines] == [
        ("ada", "1.1", "", "", "2"), ("ada", "1.2", "true", "3", "3"), ("ada", "1.3", "", "", ""),
        ("ada", "review", "", "", "4"), ("bob", "1.1", "", "", "2"), ("bob", "1.2", "false", "0", "3"),
        ("bob", "1.3", "", "", "")]
    assert lines[0]["message"] == "to mark by hand: a prediction (1); compared (1)"
    assert lines[2]["message"] == "to mark by hand: no criteria in the rubric"
    assert lines[5]["message"] == "swap"
    text = feedback("ada", [r for r in rows if r.student == "ada"])
    assert "1 of 1 passed, 3 of 3 points" in text and "marked by your teacher (out of 4)" in text


def test_resume_keeps_the_graded_rows_and_runs_nothing_graded(tmp_path):
    from gradeclip_lib.grading import grade
    from gradeclip_lib.grading.results import Row

    nbformat.write(_notebook(), (tmp_path / "subs" / "ada").mkdir(parents=True) or tmp_path / "subs/ada/01.ipynb")
    before = [Row("ada", "01", "1.2", False, 0.0, 2.0, "No answer yet"), Row("ada", "01", "1.1", None, None, 1.0, "x")]
    Gradebook(tmp_path / "out", before).finish()
    rubric = parse_rubric({"reports": {"review": {"criteria": [{"criterion": "one claim", "points": 4}]}}})
    rows, runs = grade(tmp_path / "subs", tmp_path / "out", rubric=rubric, book=tmp_path, resume=True, progress=False)
    assert not runs  # nothing ran: the only notebook was graded before
    lines = list(csv.DictReader((tmp_path / "out" / "gradebook.csv").open()))
    assert [(r["exercise"], r["passed"], r["points"]) for r in lines] == [("1.1", "", ""), ("1.2", "false", "0"),
                                                                         ("review", "", "")]
    assert "not passed yet (0 / 2). No answer yet" in (tmp_path / "out" / "feedback" / "ada.md").read_text()


def test_the_book_s_rubric_covers_every_exercise():
    rubric = load_rubric(BOOK / "rubrics.json")
    numbers = {e.number for path in BOOK.glob("*.ipynb") for e in find_exercises(nbformat.read(path, as_version=4))}
    assert numbers <= set(rubric.exercises), f"add {sorted(numbers - set(rubric.exercises))} to book/rubrics.json"
    assert rubric.reports and all(item.criteria for item in rubric.reports.values())


def test_rubric_errors_name_the_entry(tmp_path):
    with pytest.raises(RubricError, match="'2.2'.*points must be a number"):
        parse_rubric({"exercises": {"2.2": {"points": "two"}}})
    with pytest.raises(RubricError, match="unknown key"):
        parse_rubric({"exercise": {}})
    bad = tmp_path / "r.json"
    bad.write_text("{")
    with pytest.raises(RubricError, match="not valid JSON"):
        load_rubric(bad)
    assert load_rubric(None) == Rubric()


def test_layouts_and_their_errors(tmp_path):
    (tmp_path / "ada").mkdir()
    for path in ["ada/01_clip_attention.ipynb", "ada/.ipynb_checkpoints/01_clip_attention-checkpoint.ipynb",
                 "bob__02_grad_eclip_images.ipynb"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("{}")
    assert [(s.student, s.chapter) for s in find_submissions(tmp_path)] == [("ada", "01"), ("bob", "02")]
    for wrong, says in [("chapter1.ipynb", "<student>__<chapter>.ipynb"), ("ada/my_work.ipynb", "two digits"),
                        ("ada/01.ipynb", "two notebooks for chapter 01"), ("ada/x/01_a.ipynb", "too deep")]:
        (tmp_path / wrong).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / wrong).write_text("{}")
        with pytest.raises(LayoutError, match=says):
            find_submissions(tmp_path)
        (tmp_path / wrong).unlink()
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no notebook"):
        find_submissions(tmp_path / "empty")


# ---- the end-to-end test: submissions made from the student edition

def _student_edition():
    spec = importlib.util.spec_from_file_location("student_edition", ROOT / "tools" / "student_edition.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _solutions(instructor: nbformat.NotebookNode) -> dict[str, list]:
    """The code cells of each gated solution, by exercise label."""
    found, label = {}, None
    for cell in instructor.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip("`").startswith("{solution-start}"):
            label = cell.source.split("}", 1)[1].split()[0]
            found[label] = []
        elif cell.cell_type == "markdown" and cell.source.lstrip("`").startswith("{solution-end}"):
            label = None
        elif label and cell.cell_type == "code":
            found[label].append(nbformat.from_dict(dict(cell, outputs=[], execution_count=None)))
    return found


def _submissions(root: Path) -> dict[str, nbformat.NotebookNode]:
    instructor = nbformat.read(BOOK / CHAPTER, as_version=4)
    student = _student_edition().strip(nbformat.read(BOOK / CHAPTER, as_version=4))[0]
    # the cells up to the setup (the first that imports the library), then the exercise section, as the
    # student edition has them: the chapter's other cells take time and no exercise needs them
    setup = next(i for i, c in enumerate(student.cells) if c.cell_type == "code" and "import gradeclip_lib" in c.source)
    exercises = find_exercises(student)
    partial = new_notebook(cells=[*student.cells[:setup + 1], *student.cells[exercises[0].cell:]],
                           metadata=student.metadata)
    solutions = _solutions(instructor)

    def with_solutions() -> nbformat.NotebookNode:
        nb = nbformat.from_dict(json.loads(json.dumps(partial)))
        for ex in reversed(find_exercises(nb)):  # each solution where the instructor's book has it
            at = ex.checks[0] if ex.checks else ex.cell + 1
            nb.cells[at:at] = solutions.get(ex.label, []) if ex.checks else []
        return nb

    complete, crash, loop = with_solutions(), with_solutions(), with_solutions()
    crash.cells[setup].source = 'raise RuntimeError("the setup cell broke")\n' + crash.cells[setup].source
    code = next(e for e in find_exercises(loop) if e.kind == "code")
    loop.cells.insert(code.checks[0], new_code_cell("while True:\n    pass"))
    dies = nbformat.from_dict(json.loads(json.dumps(partial)))
    dies.cells.insert(0, new_code_cell("import os\n\nos._exit(1)"))
    made = {"amy_loop": loop, "ben_complete": complete, "cem_partial": partial, "dan_crash": crash, "eve_dies": dies}
    for name, nb in made.items():
        (root / name).mkdir(parents=True)
        nbformat.write(nb, root / name / CHAPTER)
    return made


def test_grade_submissions_from_the_student_edition(tmp_path):
    from gradeclip_lib.cli import main

    made = _submissions(tmp_path / "submissions")
    exercises = find_exercises(made["ben_complete"])
    checked = [e.number for e in exercises if e.checks]
    code = [e.number for e in exercises if e.kind == "code" and e.checks]
    assert code
    # the looping notebook starts first and runs beside the others (two at a time)
    assert main(["grade", str(tmp_path / "submissions"), "--out", str(tmp_path / "out"), "--timeout", str(TIMEOUT),
                 "--jobs", "2"]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "gradebook.csv").open()))
    by = {(r["student"], r["exercise"], r["passed"] != ""): r for r in rows}
    rubric = load_rubric(BOOK / "rubrics.json")
    for number in checked:
        full = f"{rubric.checked_points(number):g}"
        done = by["ben_complete", number, True]
        assert (done["passed"], done["points"], done["max_points"]) == ("true", full, full), done
        assert done["message"].startswith("Correct"), done
        left = by["cem_partial", number, True]
        assert (left["passed"], left["points"]) == ("false", "0") and left["message"].startswith("No answer yet")
        crash = by["dan_crash", number, True]  # a code exercise needs the setup; a prediction may not
        assert crash["passed"] == "false" and "RuntimeError: the setup cell broke" in crash["message"] or (
            number not in code and crash["passed"] == "true"), crash
        dead = by["eve_dies", number, True]
        assert dead["passed"] == "false" and dead["message"].startswith("the kernel died in cell 1")
        loop = by["amy_loop", number, True]
        if number in code:  # the loop sits before the code exercise's check
            assert loop["passed"] == "false", loop
            assert loop["message"].startswith(f"timed out: the notebook ran past {TIMEOUT} s"), loop
        else:  # the checks that ran before it keep their result
            assert loop["passed"] == "true", loop
    hand = [r for r in rows if r["passed"] == ""]
    assert hand and all(r["message"].startswith("to mark by hand: ") and r["points"] == "" for r in hand)
    assert {r["student"] for r in rows} == set(made)
    for student in made:
        assert (tmp_path / "out" / "feedback" / f"{student}.md").read_text().startswith(f"# Feedback for {student}")
        assert (tmp_path / "out" / "executed" / student / CHAPTER).exists()


def test_a_wrong_layout_is_a_clear_error(tmp_path, capsys):
    from gradeclip_lib.cli import main

    (tmp_path / "work.ipynb").write_text("{}")
    assert main(["grade", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "<student>__<chapter>.ipynb" in err and "SUBMISSIONS/<student>/<chapter>.ipynb" in err


def test_the_kernel_environment_is_offline(tmp_path):
    import socket
    import subprocess

    from gradeclip_lib.grading.offline import offline_env

    env = offline_env(tmp_path)
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    code = ("import socket, urllib.request\n"
            f"socket.create_connection(('127.0.0.1', {server.getsockname()[1]})).close()\n"
            "for call in (lambda: socket.create_connection(('93.184.216.34', 80), timeout=5),\n"
            "             lambda: urllib.request.urlopen('https://huggingface.co', timeout=5)):\n"
            "    try:\n        call()\n    except OSError as err:\n        print('refused:', err)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    server.close()
    assert out.stdout.count("refused:") == 2 and "no network while grading" in out.stdout, out.stderr
