"""What every self-check shares: the 'not answered yet' failure, and a comparison that names the
typical mistake an answer matches instead of the right result."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

NOT_ANSWERED = "No answer yet: fill in the starter cell above (replace the ...), run it, then run this check again."


def require_answer(answer: object) -> None:
    """Fail with the 'not answered' hint when the starter was left as it is (``None`` or ``...``)."""
    if answer is None or answer is Ellipsis:
        raise AssertionError(NOT_ANSWERED)


def call(fn: Callable, *args):
    """The student's function on ``args`` (copies of tensors); an error in it becomes a failed check
    that says where it broke."""
    require_answer(fn)
    if not callable(fn):
        raise AssertionError(NOT_ANSWERED)
    copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        return fn(*copies)
    except Exception as err:  # the student's code
        raise AssertionError(f"Your {getattr(fn, '__name__', 'function')} raised {type(err).__name__}: {err}") from err


def as_float_tensor(answer: object, what: str) -> torch.Tensor:
    """The answer as a float tensor, or a hint saying what kind of object was expected."""
    require_answer(answer)
    try:
        return torch.as_tensor(answer).detach().float().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise AssertionError(f"{what}: expected a tensor (or an array), got {type(answer).__name__}.") from err


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> bool:
    """Equal up to float error, relative to the larger of the two (shapes must match)."""
    if a.shape != b.shape:
        return False
    scale = max(float(a.abs().max()) if a.numel() else 0.0, float(b.abs().max()) if b.numel() else 0.0, 1e-12)
    return bool(((a - b).abs() <= rtol * scale + 1e-7).all())


def check_tensor(answer: object, expected: torch.Tensor, what: str,
                 mistakes: Mapping[str, torch.Tensor | Callable[[], torch.Tensor]] | None = None,
                 rtol: float = 1e-4) -> None:
    """Pass if ``answer`` equals ``expected``; otherwise raise with the hint of the first typical
    mistake it equals (``mistakes``: hint -> the result that mistake gives), or say how it differs."""
    got = as_float_tensor(answer, what)
    expected = expected.detach().float().cpu()
    if got.shape != expected.shape and (got.ndim > 1 and got.numel() == expected.numel()
                                        or got.squeeze().shape == expected.squeeze().shape):
        got = got.reshape(expected.shape)  # the same values laid out flat (row by row) are right too
    if close(got, expected, rtol):
        return
    for hint, wrong in (mistakes or {}).items():
        wrong = (wrong() if callable(wrong) else wrong).detach().float().cpu()
        if wrong.squeeze().shape == got.squeeze().shape and close(got.squeeze(), wrong.squeeze(), rtol):
            raise AssertionError(f"{what}: not right yet. {hint}")
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}.")
    worst = float((got - expected).abs().max())
    raise AssertionError(f"{what}: different from the library's result (largest difference {worst:.3g}); "
                         "re-read the formula above and compare your steps one by one.")
