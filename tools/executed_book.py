"""Lay out the book for a build that renders the outputs nbval computed, instead of executing the chapters again.

    python tools/executed_book.py DIR

``pytest --nbval-lax book --executed-notebooks DIR`` (see ``conftest.py``) leaves the executed chapters in
``DIR/book``. This adds the book's other pages, ``_toc.yml`` and ``_config.yml`` with execution off, and
refuses (exit 1, naming the chapter) when a chapter of the table of contents is missing there, or when
its code differs from ``book/`` (an executed copy from an older run). Then ``jupyter-book build DIR``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def chapters() -> list[Path]:
    """The notebooks of the table of contents, relative to the repository."""
    names = re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text())
    return [Path(name + ".ipynb") for name in names if (ROOT / (name + ".ipynb")).exists()]


def code_of(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def problems(out: Path) -> list[str]:
    """What makes ``out`` unfit to build from: chapters missing, unexecuted or out of date."""
    found = []
    for chapter in chapters():
        executed = out / chapter
        if not executed.exists():
            found.append(f"{chapter}: not executed (did one of its cells fail under nbval?)")
        elif code_of(executed) != code_of(ROOT / chapter):
            found.append(f"{chapter}: the executed copy's code differs from the book's (an older run)")
    return found


def config_without_execution(text: str) -> str:
    """``_config.yml`` for a tree elsewhere: execution off, the book's Sphinx extension by absolute path."""
    text = re.sub(r"^(\s*execute_notebooks:).*$", r'\1 "off"', text, flags=re.MULTILINE)
    return text.replace("tools/sphinx_ext", str(ROOT / "tools" / "sphinx_ext"))


def lay_out(out: Path) -> None:
    """Copy the non-notebook pages and the configuration next to the executed chapters."""
    for path in (ROOT / "book").rglob("*"):
        if path.is_file() and path.suffix != ".ipynb" and ".ipynb_checkpoints" not in path.parts:
            target = out / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    shutil.copy2(ROOT / "_toc.yml", out / "_toc.yml")
    (out / "_config.yml").write_text(config_without_execution((ROOT / "_config.yml").read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the folder pytest --executed-notebooks wrote")
    args = parser.parse_args(argv)
    found = problems(args.out)
    if found:
        print("cannot build from the executed notebooks:\n  " + "\n  ".join(found), file=sys.stderr)
        return 1
    lay_out(args.out)
    print(f"{len(chapters())} executed chapters laid out in {args.out}; build it with jupyter-book build {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
