"""Run with the student environment's Python (make test builds one afresh from requirements-student.txt):
every module of the library imports, the developer's tools are absent, JupyterLab is there, and chapters 1 and
3 execute from top to bottom in that environment's kernel."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import shutil
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
DEVELOPER_ONLY = ("jupyter_book", "pytest", "nbval", "ruff", "playwright", "importlinter", "quantus")
CHAPTERS = ("01_clip_attention.ipynb", "03_grad_eclip_text.ipynb")


def main() -> int:
    import gradeclip_lib

    for module in pkgutil.walk_packages(gradeclip_lib.__path__, "gradeclip_lib."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    present = [name for name in DEVELOPER_ONLY if importlib.util.find_spec(name) is not None]
    if present:
        print(f"the student environment holds developer tools: {', '.join(present)}")
        return 1
    lab = Path(sys.executable).with_name("jupyter-lab")
    if not lab.exists() and shutil.which("jupyter-lab") is None:
        print("no jupyter-lab in the student environment")
        return 1
    for name in CHAPTERS:
        notebook = nbformat.read(ROOT / "book" / name, as_version=4)
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "book")}}).execute()
        print(f"{name}: every cell ran in the student environment")
    print("the student environment runs the chapters, with JupyterLab and without the developer's tools")
    return 0


if __name__ == "__main__":
    sys.exit(main())
