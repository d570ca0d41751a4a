"""The course pages' glossary, optional material and wording: the glossary is in the table of contents and
linked from the introduction, defines the terms a student meets, and points each to a chapter that exists;
engineering detail is marked optional; the chapters call Grad-ECLIP's default mode "forward", leaving
"faithful" to the faithfulness chapter's subject."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
GLOSSARY = BOOK / "glossary.md"
TERMS = ["attention head", "class token", "patch token", "query, key and value", "out_proj", "ln_post", "embedding",
         "cosine similarity", "logit scale", "zero-shot", "saliency map", "Grad-ECLIP", "channel weight",
         "spatial weight", "forward mode", "paper mode", "pointing game", "Wilson interval", "McNemar test",
         "deletion curve", "insertion curve", "substrate", "sanity check", "ShapesWorld", "binding", "faithfulness"]


def glossary_terms() -> dict[str, str]:
    """Each term of the page's {glossary} blocks and its definition."""
    terms: dict[str, str] = {}
    for block in re.findall(r"```\{glossary\}\n(.*?)\n```", GLOSSARY.read_text(), re.S):
        term = None
        for line in block.splitlines():
            if line.startswith(":") or not line.strip():
                continue
            if not line.startswith(" "):
                term = line.strip()
                terms[term] = ""
            else:
                terms[term] += line.strip() + " "
    return terms


def markdown_of(notebook: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                     if c["cell_type"] == "markdown")


def test_the_glossary_is_a_page_of_the_book_linked_from_the_introduction():
    assert "  - file: book/glossary\n" in (ROOT / "_toc.yml").read_text()
    assert "](glossary.md)" in (BOOK / "intro.md").read_text()


@pytest.mark.parametrize("term", TERMS)
def test_the_glossary_defines_each_term_in_a_sentence_or_two_with_its_chapter(term):
    definition = glossary_terms()[term]
    sentences = [s for s in re.split(r"(?<=[.?])\s+(?=[A-Z`$(])", definition.strip()) if not s.startswith("See ")]
    assert 1 <= len(sentences) <= 2, sentences
    chapters = re.findall(r"\]\((0\d_\w+\.ipynb)\)", definition)
    assert chapters, f"{term}: no chapter linked"
    for name in chapters:
        assert (BOOK / name).is_file(), name


def test_every_term_the_glossary_links_is_defined_there():
    terms = glossary_terms()
    for role in re.findall(r"\{term\}`([^`]+)`", GLOSSARY.read_text()):
        target = re.search(r"<(.+)>", role)
        assert (target.group(1) if target else role) in terms, role


def test_engineering_detail_is_marked_optional():
    text = markdown_of(BOOK / "05_shapes_world.ipynb")
    box = re.search(r"```\{admonition\} Optional: how the training runs fast on a CPU\n(.*?)\n```", text, re.S)
    assert box and "bf16 autocast" in box.group(1) and "sdpa_kernel" in box.group(1)
    assert text.count("bf16 autocast") == 1 and "### How the recipe was chosen (optional)" in text
    chapter2 = markdown_of(BOOK / "02_grad_eclip_images.ipynb")
    assert "### What the shared route costs (optional)" in chapter2
    assert "### How large can an image be? (optional)" in chapter2


def test_ln_post_and_out_proj_are_explained_where_the_book_first_names_them():
    first = markdown_of(BOOK / "01_clip_attention.ipynb")
    assert "`ln_post`, the LayerNorm after the last block" in first
    assert "`out_proj` (the attention's\n**output projection**)" in first


def test_the_chapters_call_the_default_mode_forward():
    """"faithful" is what chapter 7 measures; the mode is named "forward", and its old name appears only
    where chapter 2 says it still works."""
    for notebook in sorted(BOOK.glob("0*.ipynb")):
        source = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"])
        old = re.findall(r'(?i)faithful grad-eclip|grad-eclip \(faithful\)|mode="faithful"|"faithful"|faithful mode',
                         source)
        allowed = 1 if notebook.name.startswith("02_") else 0  # "Earlier versions called this mode ..."
        assert len(old) == allowed, (notebook.name, old)
