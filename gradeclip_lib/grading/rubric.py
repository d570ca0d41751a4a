"""Rubrics as data (``book/rubrics.json``): points per automatically checked exercise, and for the exercises
and reports a teacher marks by hand, criteria with their points."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GradEclipError


class RubricError(GradEclipError, ValueError):
    """A rubric file that cannot be read; the message names the entry."""


@dataclass(frozen=True)
class Criterion:
    """One thing a teacher looks for, and what it is worth."""

    text: str
    points: float


@dataclass(frozen=True)
class Item:
    """An exercise's or a report's rubric: ``points`` for its automatic check, ``criteria`` to mark by hand."""

    title: str = ""
    points: float | None = None
    criteria: tuple[Criterion, ...] = ()

    @property
    def hand_points(self) -> float | None:
        """The points of the criteria marked by hand (None without criteria)."""
        return sum(c.points for c in self.criteria) if self.criteria else None

    def describe(self) -> str:
        """The criteria in one line, each with its points."""
        return "; ".join(f"{c.text} ({c.points:g})" for c in self.criteria)


@dataclass(frozen=True)
class Rubric:
    """Points per exercise ("2.2"), and reports marked by hand (by name)."""

    exercises: dict[str, Item] = field(default_factory=dict)
    reports: dict[str, Item] = field(default_factory=dict)
    default_points: float = 1.0

    def checked_points(self, exercise: str) -> float:
        """What a passed automatic check is worth."""
        item = self.exercises.get(exercise, Item())
        return item.points if item.points is not None else self.default_points


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise RubricError(f"{where}: points must be a number >= 0, not {value!r}")
    return float(value)


def _item(name: str, entry: object, where: str) -> Item:
    if not isinstance(entry, dict):
        raise RubricError(f"{where} {name!r}: expected an object with 'points' and/or 'criteria'")
    unknown = set(entry) - {"title", "points", "criteria"}
    if unknown:
        raise RubricError(f"{where} {name!r}: unknown key(s) {sorted(unknown)} (use title, points, criteria)")
    criteria = []
    for i, c in enumerate(entry.get("criteria", [])):
        if not isinstance(c, dict) or not isinstance(c.get("criterion"), str) or "points" not in c:
            raise RubricError(f"{where} {name!r}, criterion {i + 1}: expected {{\"criterion\": text, \"points\": n}}")
        criteria.append(Criterion(c["criterion"], _number(c["points"], f"{where} {name!r}, criterion {i + 1}")))
    points = entry.get("points")
    return Item(title=str(entry.get("title", "")), criteria=tuple(criteria),
                points=None if points is None else _number(points, f"{where} {name!r}"))


def parse_rubric(data: object) -> Rubric:
    """A rubric from its JSON data: ``{"default_points": n, "exercises": {"2.2": {...}}, "reports": {...}}``."""
    if not isinstance(data, dict):
        raise RubricError("a rubric is a JSON object with 'exercises' (and optionally 'reports', 'default_points')")
    unknown = set(data) - {"default_points", "exercises", "reports", "about"}
    if unknown:
        raise RubricError(f"unknown key(s) {sorted(unknown)} (use about, default_points, exercises, reports)")
    return Rubric(exercises={k: _item(k, v, "exercise") for k, v in data.get("exercises", {}).items()},
                  reports={k: _item(k, v, "report") for k, v in data.get("reports", {}).items()},
                  default_points=_number(data.get("default_points", 1), "default_points"))


def load_rubric(path: str | Path | None) -> Rubric:
    """The rubric in a JSON file; without a file, every checked exercise is worth ``default_points`` (1)."""
    if path is None:
        return Rubric()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RubricError(f"no rubric file {path}") from None
    except json.JSONDecodeError as err:
        raise RubricError(f"{path} is not valid JSON: {err}") from None
    try:
        return parse_rubric(data)
    except RubricError as err:
        raise RubricError(f"{path}: {err}") from None
