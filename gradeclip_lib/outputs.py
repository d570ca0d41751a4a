"""Notebook outputs that read in every form the book takes: HTML in the web pages and in Jupyter,
Markdown in the PDF (jupyter-book's LaTeX builder skips HTML and takes Markdown), plain text in a
terminal. A bare ``HTML(...)`` would print "<IPython.core.display.HTML object>" in the PDF."""

from __future__ import annotations

import html
from collections.abc import Sequence


class Rich:
    """One output with an HTML and a Markdown form (and the Markdown as its plain text)."""

    def __init__(self, html_text: str, markdown: str) -> None:
        self.html, self.markdown = html_text, markdown

    def _repr_html_(self) -> str:
        return self.html

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __repr__(self) -> str:
        return self.markdown


class Table:
    """A small table of results: ``rows`` of values under ``columns``, floats shown with ``digits``."""

    def __init__(self, rows: Sequence[Sequence], columns: Sequence[str], digits: int = 3) -> None:
        self.columns = [str(c) for c in columns]
        self.cells = [[self._cell(v, digits) for v in row] for row in rows]

    @staticmethod
    def _cell(value, digits: int) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in self.cells)
        gaps = "border-collapse: separate; border-spacing: 0.6em 0.15em"  # columns of intervals stay apart
        return f'<table style="{gaps}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def _repr_markdown_(self) -> str:
        def line(values):
            return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

        return "\n".join([line(self.columns), line(["---"] * len(self.columns)),
                          *(line(map(_breakable, row)) for row in self.cells)])

    def __repr__(self) -> str:
        widths = [max(len(r[j]) for r in [self.columns, *self.cells]) for j in range(len(self.columns))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in [self.columns, *self.cells]]
        return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _breakable(cell: str) -> str:
    """A cell for a narrow PDF column: ordinary spaces (a no-break space would push the text out of
    its cell) and a zero-width space after '_' and ':', where long names such as self_attention may
    break (the book's LaTeX preamble makes U+200B a break point)."""
    return cell.replace("\u00a0", " ").replace("_", "_\u200b").replace(":", ":\u200b")
