"""A pytest plugin so that the notebooks run once: ``python -m pytest -p tools.nbval_outputs --nbval-lax book
--executed-notebooks DIR`` writes each notebook that nbval executed, with the outputs nbval saw, to
``DIR/<its path>``, so that the book's build renders those outputs (``tools/executed_book.py``) instead of
executing every chapter a second time."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from IPython.core.displayhook import DisplayHook


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--executed-notebooks", metavar="DIR", default=None,
                     help="write each notebook nbval ran, with its outputs, under DIR (same relative path)")


def pytest_configure(config: pytest.Config) -> None:
    config._executed_notebooks = {}  # notebook file node -> True while all its cells passed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if not item.config.getoption("--executed-notebooks") or not hasattr(item, "test_outputs"):
        return
    report = outcome.get_result()
    notebook = item.parent
    done = item.config._executed_notebooks
    if report.when == "call":
        done.setdefault(notebook, True)
        if report.failed:
            done[notebook] = False
        if item.test_outputs is not None:  # None: the cell was skipped (nbval-skip), as the build skips it
            done["count", notebook] = count = done.get(("count", notebook), 0) + 1
            # nbval runs cells without storing them in the history, where IPython looks for a final ';'
            quiet = DisplayHook.semicolon_at_end_of_expression(item.cell.source)
            item.cell.outputs = [_as_output(out, count) for out in item.test_outputs
                                 if not (quiet and out["output_type"] == "execute_result")]
            item.cell.execution_count = count


def _as_output(out: dict, count: int) -> nbformat.NotebookNode:
    """One nbval output as a valid nbformat output (nbval keeps the raw message's fields)."""
    kind = out["output_type"]
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=out["name"], text=out["text"])
    if kind == "error":
        return nbformat.v4.new_output("error", ename=out["ename"], evalue=out["evalue"], traceback=out["traceback"])
    node = nbformat.v4.new_output(kind, data=out["data"], metadata=out.get("metadata", {}))
    if kind == "execute_result":
        node.execution_count = count
    return node


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = session.config.getoption("--executed-notebooks")
    if not target:
        return
    for notebook, passed in session.config._executed_notebooks.items():
        if isinstance(notebook, tuple) or not passed:
            continue
        path = Path(str(notebook.fspath)).resolve()
        out = Path(target) / path.relative_to(session.config.rootpath)
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook.nb, out)
