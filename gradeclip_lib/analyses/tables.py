"""The analyses chapter's tables, each value with its 95 % interval, ready to display (HTML on the page,
Markdown in the PDF)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..metrics import format_rate
from ..outputs import Table


def _cell(triple, digits: int = 2) -> str:
    return "n/a" if triple[0] != triple[0] else format_rate(*triple, digits=digits)  # nan: no such objects


def decomposition_table(summary: Mapping) -> Table:
    """Per number of named objects: the caption map against the phrase maps (correlation with the sum of
    the named and of the unnamed phrases' maps) and its lift on named and unnamed objects."""
    rows = [[k, v["scenes"], _cell(v["corr_named"]), _cell(v["corr_unnamed"]), _cell(v["lift_named"], 1),
             _cell(v["lift_unnamed"], 1)] for k, v in summary["by_k"].items()]
    return Table(rows, ["named", "scenes", "corr. named", "corr. unnamed", "lift named", "lift unnamed"])


def similarity_table(summary: Mapping) -> Table:
    """Per number of named objects: cos(image, caption), cos(image, sum of its phrases) and cos(caption,
    sum of its phrases), means with intervals."""
    rows = [[k, _cell(v["cos_caption"]), _cell(v["cos_sum"]), _cell(v["text_sum"])]
            for k, v in summary["by_k"].items()]
    return Table(rows, ["named", "cos(image, caption)", "cos(image, phrases)", "cos(caption, phrases)"])


def attribute_table(localised: Sequence[Mapping], bound: Sequence[Mapping]) -> Table:
    """Per attribute family: the map lands on the target / on its twin (with the chance of a random point)
    and binding against the foil (chance 0.5)."""
    binding = {b["family"]: b for b in bound}
    rows = [[r["family"], _cell(r["target"]), _cell(r["twin"]), f"{r['chance_target']:.2f}",
             _cell(binding[r["family"]]["rate"])] for r in localised]
    return Table(rows, ["family", "map on target", "map on twin", "chance", "binding (chance 0.50)"])
