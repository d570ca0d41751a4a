"""The reader's-eye page check (tools/check_pages.py) on a small site with one fault of each kind, and on
a clean page: each fault is found where it is, and nothing is found on the clean page."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
check_pages = pytest.importorskip("check_pages")

if not (shutil.which("chromium") or shutil.which("chromium-browser")):
    pytest.skip("no Chromium here: `make test` installs Debian's chromium", allow_module_level=True)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082")
STYLE = "<style>main { width: 400px } pre { overflow-x: auto }</style>"


def page(body: str, head: str = "") -> str:
    return f"<!doctype html><html><head>{STYLE}{head}</head><body><main><article>{body}</article></main></body></html>"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "img.png").write_bytes(PNG)
    (root / "clean.html").write_text(page(
        '<h1 id="top">Clean</h1><img src="img.png"><pre>short line</pre>'
        '<p>See <a href="faults.html#here">there</a>, <a href="#top">up</a>, <a href="https://example.org/">out</a>.</p>'))
    (root / "faults.html").write_text(page(
        '<h2 id="here">Faults</h2><img src="missing.png">'
        f'<pre>{"x = 1  " * 40}</pre>'
        '<span class="math notranslate nohighlight">\\(x^2\\)</span><p>and $y$ left as TeX</p>'
        '<a href="gone.html">gone</a> <a href="clean.html#nowhere">no anchor</a>',
        head="<script>undefinedFunction();</script>"))
    (root / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=clean.html" />')
    return root


def test_each_fault_is_found_on_its_page(site):
    problems = check_pages.check_site(site)
    found = {(p.page, p.kind) for p in problems}
    assert ("faults.html", "figure") in found
    assert ("faults.html", "javascript") in found
    assert ("faults.html", "too wide") in found
    assert ("faults.html", "maths") in found
    links = [p.detail for p in problems if p.kind == "link"]
    assert any("gone.html" in d for d in links) and any("#nowhere" in d for d in links)
    assert not [p for p in problems if p.page in ("clean.html", "index.html")]  # the clean page is clean


def test_the_command_exits_non_zero_on_problems(site, capsys):
    assert check_pages.main([str(site)]) == 1
    assert "3 pages checked in Chromium" in capsys.readouterr().out
    clean = site.parent / "only_clean"
    clean.mkdir()
    shutil.copy(site / "clean.html", clean / "clean.html")
    shutil.copy(site / "img.png", clean / "img.png")
    (clean / "faults.html").write_text(page('<h2 id="here">fine</h2>'))
    assert check_pages.main([str(clean)]) == 0
