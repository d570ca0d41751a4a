"""Self-checks for the book's exercises, one module per chapter.

Each check takes the student's answer (a tensor, or a function it then calls on cases of its own),
compares it with the library's result, and raises ``AssertionError`` with a hint that names the usual
mistake it recognises, so a check cell fails until the answer is right and passes for any correct one.
"""

from . import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09
from .checking import NOT_ANSWERED

__all__ = ["NOT_ANSWERED", "ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "ch08", "ch09"]
