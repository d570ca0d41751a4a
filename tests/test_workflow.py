"""The publishing workflow cannot run here: it is checked by two linters from PyPI (the GitHub
workflow schema, and zizmor's audits offline), and for what it must do: real weights, a kept weight
cache, the executed book and its PDF deployed to Pages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def test_there_is_a_publishing_workflow():
    assert [w.name for w in WORKFLOWS] == ["book.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_the_schema_and_zizmor(workflow):
    schema = subprocess.run([BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", workflow],
                            capture_output=True, text=True)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    audit = subprocess.run([BIN / "zizmor", "--offline", "--no-progress", workflow], capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_the_workflow_publishes_real_maps():
    text = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert "model-check --require-weights" in text  # a build that would show the ShapesWorld stand-in fails
    assert "~/.cache/huggingface" in text and "actions/cache@" in text
    assert "make book" in text and "make pdf" in text
    assert "path: _build/html" in text and "actions/deploy-pages@" in text


def test_model_check_can_require_the_weights(tmp_path, monkeypatch, capsys):
    from gradeclip_lib.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("GRADECLIP_MODEL", "ViT-B-32-quickgelu:openai")
    assert main(["model-check"]) == 0  # a reader's build goes on, with the stand-in announced
    assert main(["model-check", "--require-weights"]) == 1
    assert "ShapesWorld CLIP on its scenes instead" in capsys.readouterr().out


def test_the_student_set_pins_what_the_developer_set_pins_and_leaves_the_tools_out():
    def pins(name: str) -> dict[str, str]:
        lines = (ROOT / name).read_text().splitlines()
        return dict(line.split("#")[0].strip().split("==") for line in lines if "==" in line.split("#")[0])

    student, developer = pins("requirements-student.txt"), pins("requirements.txt")
    shared = set(student) & set(developer)
    assert {p: student[p] for p in shared} == {p: developer[p] for p in shared}
    assert "jupyterlab" in student  # a front end (the developer's too: tests/test_explorer_lab.py)
    assert "myst-nb" in set(student) - set(developer)  # the glue of hidden cells
    assert not {"jupyter-book", "pytest", "nbval", "ruff", "playwright", "quantus"} & set(student)
    assert "student-env-test" in (ROOT / "Makefile").read_text().split("\ntest:")[1].splitlines()[0]
