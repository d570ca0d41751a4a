"""Grading: run the students' notebooks under a time limit without network, read each exercise's self-check,
and write a CSV gradebook and a feedback file per student (``python -m gradeclip_lib grade --help``)."""

from .grade import grade
from .layout import LayoutError, Submission, find_submissions
from .notebook import Exercise, find_exercises
from .results import Row, read_results
from .rubric import Rubric, load_rubric

__all__ = ["Exercise", "LayoutError", "Row", "Rubric", "Submission", "find_exercises", "find_submissions", "grade",
           "load_rubric", "read_results"]
