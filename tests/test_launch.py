"""Launching the chapters elsewhere: the repository URL in one place (_config.yml), the same in every
chapter's Colab cell, set by tools/set_repository.py; the Colab cell does nothing outside Colab."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("0*.ipynb"))


def load_tool():
    spec = importlib.util.spec_from_file_location("set_repository", ROOT / "tools" / "set_repository.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def colab_cell(path: Path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert first_code["id"] == "colab", f"{path.name}: the Colab cell must be the first code cell"
    return first_code


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_starts_with_the_colab_cell_naming_the_configured_repository(path):
    tool = load_tool()
    cell = colab_cell(path)
    assert "remove-cell" in cell["metadata"]["tags"]  # not on the book's pages
    source = "".join(cell["source"])
    assert source == "".join(colab_cell(CHAPTERS[0])["source"])  # one cell, the same everywhere
    named = re.search(r'^REPOSITORY = "(.*)"', source, flags=re.MULTILINE).group(1)
    assert named == tool.repository_of((ROOT / "_config.yml").read_text())


def run_cell(source: str, on_colab: bool, capsys) -> tuple[list, str]:
    """Run the cell as IPython would (its ! and % lines as calls), recording the shell commands and magics."""
    calls = []
    shell = types.SimpleNamespace(system=lambda cmd: calls.append(("!", cmd)),
                                  run_line_magic=lambda name, arg: calls.append(("%", f"{name} {arg}")))
    code = TransformerManager().transform_cell(source)
    saved = sys.modules.pop("google.colab", None)
    path = list(sys.path)
    try:
        if on_colab:
            sys.modules["google.colab"] = types.ModuleType("google.colab")
        exec(code, {"get_ipython": lambda: shell})
    finally:
        sys.modules.pop("google.colab", None)
        if saved is not None:
            sys.modules["google.colab"] = saved
        sys.path[:] = path
    return calls, capsys.readouterr().out


def test_the_colab_cell_clones_and_installs_only_on_colab(tmp_path, capsys):
    tool = load_tool()
    for name in ("_config.yml",):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("quizzes", "*.md"))
    source = "".join(colab_cell(tmp_path / "book" / CHAPTERS[0].name)["source"])
    assert run_cell(source, on_colab=False, capsys=capsys) == ([], "")
    if not re.search(r'^REPOSITORY = ""', source, flags=re.MULTILINE):
        return  # a published book: the cell below is tested with that URL
    calls, out = run_cell(source, on_colab=True, capsys=capsys)
    assert calls == [] and "names no repository" in out

    url = "https://github.com/example-org/gradeclip-book"
    assert len(tool.set_repository(url, tmp_path)) == len(CHAPTERS)
    config = (tmp_path / "_config.yml").read_text()
    assert tool.repository_of(config) == url
    assert 'colab_url: "https://colab.research.google.com"' in config
    assert 'binderhub_url: "https://mybinder.org"' in config
    source = "".join(colab_cell(tmp_path / "book" / CHAPTERS[0].name)["source"])
    assert f'REPOSITORY = "{url}"' in source
    calls, _ = run_cell(source, on_colab=True, capsys=capsys)
    assert [kind for kind, _ in calls] == ["!", "!", "%"]
    assert "git clone" in calls[0][1] and "{REPOSITORY}" in calls[0][1]
    assert 'pip install -q -e "/content/book-src[colab]"' in calls[1][1]
    assert calls[2][1] == "cd /content/book-src/book"
    assert run_cell(source, on_colab=False, capsys=capsys) == ([], "")

    tool.set_repository("", tmp_path)  # back to no repository: no launch button
    config = (tmp_path / "_config.yml").read_text()
    assert 'colab_url: ""' in config and 'binderhub_url: ""' in config
    with pytest.raises(SystemExit, match="github.com/OWNER/REPO"):
        tool.set_repository("https://example.org/repo", tmp_path)


def test_colab_installs_the_extra_the_chapters_need():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[]", spec)[0].lower() for spec in extras["colab"]}
    chapters_import = {"timm", "transformers", "jupyterquiz", "myst_nb", "wordcloud", "scipy"}
    assert {n.replace("-", "_") for n in names} >= chapters_import
    binder = (ROOT / "binder" / "requirements.txt").read_text()
    assert "-r ../requirements-student.txt" in binder
