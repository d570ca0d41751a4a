"""What every self-check shares: the 'not answered yet' failure, the call of a student's function that
notices a changed input, a comparison that names the typical mistake an answer matches (or else says
where it first differs from the library), the 'Correct' message, and the checks of predictions."""

from __future__ import annotations

import copy
import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

NOT_ANSWERED = "No answer yet: fill in the starter cell above (replace the ...), run it, then run this check again."


def require_answer(answer: object) -> None:
    """Fail with the 'not answered' hint when the starter was left as it is (``None`` or ``...``)."""
    if answer is None or answer is Ellipsis:
        raise AssertionError(NOT_ANSWERED)


# the width of a printed message: a book page's code column, which does not wrap printed lines
LINE_WIDTH = 76


def passed(message: str) -> str:
    """Say that the answer is right and what the check compared (the check cell shows it), printed in
    lines that fit the page, continued with an indent; returns the message as one line."""
    text = f"Correct: {message}"
    print(textwrap.fill(text, LINE_WIDTH, subsequent_indent="  ", break_on_hyphens=False))
    return text


def _ordinal(i: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(i, f"{i}th")


def _argument_names(fn: Callable, n: int, names: Sequence[str] | None) -> list[str]:
    """The names the student gave the parameters (what their code calls them), else the check's."""
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    fallback = list(names or [])
    return [params[i] if i < len(params) else fallback[i] if i < len(fallback) else f"argument {i + 1}"
            for i in range(n)]


def _same(before: object, after: object) -> bool:
    if isinstance(before, torch.Tensor):
        return (isinstance(after, torch.Tensor) and before.shape == after.shape and before.dtype == after.dtype
                and bool(torch.equal(before, after) or (before.isnan() == after.isnan()).all()
                         and torch.equal(before.nan_to_num(), after.nan_to_num())))
    if isinstance(before, np.ndarray):
        return isinstance(after, np.ndarray) and np.array_equal(before, after, equal_nan=True)
    try:
        return bool(before == after)
    except Exception:  # objects without a plain equality: not something a check passes
        return True


def call(fn: Callable, *args, names: Sequence[str] | None = None):
    """The student's function on ``args`` as they are (not copies), so that an answer that writes into
    its inputs is caught: each tensor (and list) is compared with a copy taken before the call. An
    error in the student's code becomes a failed check that says where it broke."""
    require_answer(fn)
    if not callable(fn):
        raise AssertionError(NOT_ANSWERED)
    before = [a.detach().clone() if isinstance(a, torch.Tensor)
              else copy.deepcopy(a) if isinstance(a, (list, np.ndarray)) else None for a in args]
    name = getattr(fn, "__name__", "function")
    name = "function" if name == "<lambda>" else name
    try:
        out = fn(*args)
    except Exception as err:  # the student's code
        raise AssertionError(f"Your {name} raised {type(err).__name__}: {err}") from err
    changed = [i for i, (a, b) in enumerate(zip(args, before)) if b is not None and not _same(b, a)]
    if changed:
        i = changed[0]
        arg = _argument_names(fn, len(args), names)[i]
        raise AssertionError(
            f"Your {name} changed its input `{arg}` (the {_ordinal(i + 1)} argument) in place: the caller's "
            f"data is now different. Work on a copy (`{arg} = {arg}.clone()`) or use operations that "
            "return a new tensor (`x = x * 2` instead of `x *= 2`, `clamp` instead of `clamp_`).")
    return out


def as_float_tensor(answer: object, what: str) -> torch.Tensor:
    """The answer as a float tensor, or a hint saying what kind of object was expected."""
    require_answer(answer)
    try:
        if isinstance(answer, (list, tuple)) and answer and isinstance(answer[0], torch.Tensor):
            answer = torch.stack([torch.as_tensor(a).detach().float().cpu().reshape(()) if a.numel() == 1
                                  else a.detach().float().cpu() for a in answer])
        return torch.as_tensor(answer).detach().float().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise AssertionError(f"{what}: expected a tensor (or an array), got {type(answer).__name__}.") from err


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> bool:
    """Equal up to float error, relative to the larger of the two (shapes must match)."""
    return a.shape == b.shape and bool(_close_elements(a, b, rtol).all())


def _close_elements(a: torch.Tensor, b: torch.Tensor, rtol: float) -> torch.Tensor:
    scale = max(float(a.abs().max()) if a.numel() else 0.0, float(b.abs().max()) if b.numel() else 0.0, 1e-12)
    return ((a - b).abs() <= rtol * scale + 1e-7) | (a.isnan() & b.isnan())


def _layout_slip(got: torch.Tensor, expected: torch.Tensor, rtol: float) -> str | None:
    """A hint for an answer that is the library's result up to a simple transformation: a transpose, a
    column-by-column layout, a sign, a scale or an offset."""
    if got.ndim >= 2 and expected.ndim >= 2 and got.shape[:-2] == expected.shape[:-2]:
        h, w = expected.shape[-2:]
        if got.shape[-2:] == (w, h) and close(got, expected.transpose(-1, -2), rtol):
            return "rows and columns are swapped (your result is the library's transposed)"
        by_columns = expected.flatten(-2).reshape(*expected.shape[:-2], w, h).transpose(-1, -2)
        if h != w and got.shape == expected.shape and close(got, by_columns, rtol):
            return ("the values are right but laid out column by column: the patches come row by row, so "
                    "reshape the flat values to (h, w) directly")
    if got.shape != expected.shape:
        return None
    if close(got, -expected, rtol):
        return "your result is the library's with the opposite sign"
    mask = expected.abs() > 1e-6 * float(expected.abs().max().clamp_min(1e-12))
    if mask.any():
        r = float((got[mask] / expected[mask]).median())
        if abs(r - 1) > 1e-3 and abs(r) > 1e-6 and close(got, r * expected, rtol):
            return (f"your result is the library's times {r:.3g} everywhere: the pattern is right, a scale "
                    "(a normalisation, a missing or extra factor) is not")
    shift = float((got - expected).flatten().median())
    if abs(shift) > 1e-6 and close(got, expected + shift, rtol):
        return f"your result is the library's plus {shift:.3g} everywhere: an offset (a subtraction, a minimum) is off"
    return None


def first_difference(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4) -> tuple[int, ...] | None:
    """The first position (row by row) where ``got`` and ``expected`` (same shape) differ, or None."""
    bad = ~_close_elements(got, expected, rtol)
    if not bad.any():
        return None
    return tuple(int(i) for i in bad.nonzero()[0])


def check_tensor(answer: object, expected: torch.Tensor, what: str,
                 mistakes: Mapping[str, torch.Tensor | Callable[[], torch.Tensor]] | None = None,
                 rtol: float = 1e-4, where: Callable[[tuple[int, ...]], str] | None = None,
                 case: str = "") -> float:
    """Pass if ``answer`` equals ``expected`` and return the largest difference; otherwise raise with
    the hint of the first typical mistake it equals (``mistakes``: hint -> the result that mistake
    gives), or with a simple transformation it matches (a transpose, a sign, a scale, an offset), or
    else with the first position where it differs: ``where(index)`` names that position ("patch (1,
    2)") and ``case`` the case it belongs to ("on case 2 (a 3 x 4 grid)")."""
    got = raw = as_float_tensor(answer, what)
    expected = expected.detach().float().cpu()
    prefix = f"{what} {case}".rstrip() if case else what
    if got.shape != expected.shape and got.squeeze().shape == expected.squeeze().shape:
        got = got.reshape(expected.shape)  # extra or missing axes of length 1 ([1, H, h, w]) are right too
    elif got.shape != expected.shape and got.numel() == expected.numel():
        if close(got.reshape(expected.shape), expected, rtol):
            raise AssertionError(
                f"{prefix}: the values are right, in the right order, but laid out as {tuple(got.shape)}; the "
                f"exercise asks for {tuple(expected.shape)}: reshape them (row by row) to that shape.")
        got = got.reshape(expected.shape)  # so that a wrong value is found where it lies, whatever the layout
    if close(got, expected, rtol):
        return float((got - expected).abs().max()) if got.numel() else 0.0
    for hint, wrong in (mistakes or {}).items():
        wrong = (wrong() if callable(wrong) else wrong).detach().float().cpu()
        if wrong.squeeze().shape == got.squeeze().shape and close(got.squeeze(), wrong.squeeze(), rtol):
            raise AssertionError(f"{prefix}: not right yet. {hint}")
    slip = _layout_slip(raw, expected, rtol) or _layout_slip(got, expected, rtol)
    if slip:
        raise AssertionError(f"{prefix}: {slip}.")
    if got.shape != expected.shape:
        raise AssertionError(f"{prefix}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}.")
    if bool(got.isnan().any()) and not bool(expected.isnan().any()):
        at = tuple(int(i) for i in got.isnan().nonzero()[0])
        raise AssertionError(f"{prefix}: NaN at {where(at) if where else at} (a division by zero, or 0 / 0?).")
    at = first_difference(got, expected, rtol)
    worst = float((got - expected).abs().max())
    place = where(at) if where else (f"element {at}" if len(at) > 1 else f"element {at[0]}")
    raise AssertionError(f"{prefix}: first differs from the library's at {place}: yours {float(got[at]):.4g}, "
                         f"the library's {float(expected[at]):.4g} (largest difference over all: {worst:.3g}).")


# ------------------------------------------------------------------------------ predictions
def _normalise(text: object) -> str:
    """Lower case, single spaces, and no punctuation around the words ("Yes." is "yes")."""
    return " ".join(str(text).lower().replace("_", " ").replace("-", " ").split()).strip(" .,;:!?'\"")


def as_choice(answer: object, options: Sequence[str], what: str, aliases: Mapping[str, str] | None = None) -> str:
    """The option a prediction names (``aliases`` map other spellings to an option), or a hint."""
    require_answer(answer)
    spelled = {_normalise(o): o for o in options}
    spelled.update({_normalise(k): v for k, v in (aliases or {}).items()})
    chosen = spelled.get(_normalise(answer))
    if chosen is None:
        raise AssertionError(f"{what}: answer one of {', '.join(repr(o) for o in options)} (you wrote {answer!r}).")
    return chosen


def check_choice(answer: object, right: str, options: Sequence[str], what: str, measured: str,
                 hints: Mapping[str, str] | None = None, aliases: Mapping[str, str] | None = None) -> str:
    """A prediction among named ``options`` against the one the library measures (``right``):
    ``measured`` says what was measured; ``hints`` (option -> sentence) explain a wrong option;
    ``aliases`` map other spellings to an option. Returns the option the answer names."""
    chosen = as_choice(answer, options, what, aliases)
    if chosen != right:
        hint = (hints or {}).get(chosen, "")
        raise AssertionError(f"{what}: you predicted {chosen!r}, the library measures {right!r}: {measured}. "
                             f"{hint}".rstrip())
    return chosen


def as_number(answer: object, what: str, low: float | None = None, high: float | None = None) -> float:
    """A numeric prediction as a float, or a hint that says what was expected."""
    require_answer(answer)
    try:
        value = float(answer)
    except (TypeError, ValueError) as err:
        raise AssertionError(f"{what}: expected a number, got {answer!r}.") from err
    if not np.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = f" between {low:g} and {high:g}" if low is not None and high is not None else ""
        raise AssertionError(f"{what}: expected a number{bounds}, got {answer!r}.")
    return value


def check_number(answer: object, measured: float, tolerance: float, what: str, context: str = "",
                 low: float | None = None, high: float | None = None) -> float:
    """A numeric prediction against a measured value: right within ``tolerance`` (absolute)."""
    value = as_number(answer, what, low, high)
    if abs(value - measured) > tolerance:
        direction = "high" if value > measured else "low"
        raise AssertionError(f"{what}: you predicted {value:.3g}, the library measures {measured:.3g}{context}; "
                             f"yours is too {direction} (a prediction within {tolerance:g} counts as right).")
    return value


def as_yes_no(answer: object, what: str) -> bool:
    """A yes / no prediction: True or False (or the words yes / no)."""
    require_answer(answer)
    if isinstance(answer, (bool, np.bool_)):
        return bool(answer)
    word = _normalise(answer)
    if word in ("yes", "true", "differs", "changes", "y"):
        return True
    if word in ("no", "false", "same", "the same", "n"):
        return False
    raise AssertionError(f"{what}: answer True or False (you wrote {answer!r}).")


def as_names(answer: object, what: str, options: Sequence[str], aliases: Mapping[str, str] | None = None) -> list[str]:
    """A list of names among ``options`` (in the answer's order), each spelled as the option is."""
    require_answer(answer)
    if isinstance(answer, str) or not isinstance(answer, (list, tuple, set, frozenset)):
        raise AssertionError(f"{what}: expected a list of names, e.g. [{', '.join(repr(o) for o in options[:2])}], "
                             f"got {answer!r}.")
    spelled = {_normalise(o): o for o in options}
    spelled.update({_normalise(k): v for k, v in (aliases or {}).items()})
    names = []
    for item in answer:
        name = spelled.get(_normalise(item))
        if name is None:
            raise AssertionError(f"{what}: {item!r} is not one of {', '.join(repr(o) for o in options)}.")
        names.append(name)
    return names
