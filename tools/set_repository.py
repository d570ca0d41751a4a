"""Set the book's public repository in one step: the launch buttons (Binder, Colab) and every chapter's
Colab cell.

    python tools/set_repository.py https://github.com/OWNER/REPO

The URL lives in `_config.yml` (``repository: url:``); the chapters' first code cell (id ``colab``), which
clones the repository on Colab, names the same URL, and tests/test_launch.py holds the two together. With
no URL (the default until the book is published) the book shows no launch button.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CELL = "colab"
PROVIDERS = {"binderhub_url": "https://mybinder.org", "colab_url": "https://colab.research.google.com"}


def configured(text: str, url: str) -> str:
    """``_config.yml`` with the repository ``url`` and the launch providers on (off when ``url`` is empty)."""
    text = re.sub(r'^(  url:).*$', rf'\1 "{url}"  # set by tools/set_repository.py', text, count=1, flags=re.MULTILINE)
    for key, provider in PROVIDERS.items():
        text = re.sub(rf'^(  {key}:).*$', rf'\1 "{provider if url else ""}"', text, count=1, flags=re.MULTILINE)
    return text


def repository_of(config: str) -> str:
    return re.search(r'^  url: "([^"]*)"', config, flags=re.MULTILINE).group(1)


def set_repository(url: str, root: Path = ROOT) -> list[Path]:
    """Write ``url`` into the config and each chapter's Colab cell; return the chapters changed."""
    if url and not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SystemExit(f"expected https://github.com/OWNER/REPO (Colab opens notebooks from GitHub), got {url!r}")
    config = root / "_config.yml"
    config.write_text(configured(config.read_text(), url))
    changed = []
    for path in sorted((root / "book").glob("0*.ipynb")):
        nb = json.loads(path.read_text())  # edited as stored (one line per list item), not re-serialised
        cell = next((c for c in nb["cells"] if c.get("id") == CELL), None)
        if cell is None:
            raise SystemExit(f"{path.name}: no Colab cell (id {CELL!r})")
        cell["source"] = [re.sub(r'^REPOSITORY = ".*?"', f'REPOSITORY = "{url}"', line) for line in cell["source"]]
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        changed.append(path)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="https://github.com/OWNER/REPO, or '' to remove the launch buttons")
    args = parser.parse_args()
    changed = set_repository(args.url)
    print(f"repository {args.url or '(none)'}: _config.yml and {len(changed)} chapters")


if __name__ == "__main__":
    main()
