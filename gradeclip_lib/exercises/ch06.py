"""Chapter 6 (the alternatives): telling a text-blind method from a text-aware one by experiment."""

from __future__ import annotations

from collections.abc import Callable

from .checking import passed, require_answer

# what each method's map is computed from: the image alone (False) or the image and the text (True)
TEXT_AWARE = {
    "self_attention": False,
    "rollout": False,
    "grad_eclip": True,
    "game": True,
    "grad_cam": True,
    "mask_clip": True,
    "clip_surgery": True,
}


def check_text_awareness(is_text_aware: Callable[[str], bool]) -> None:
    """``is_text_aware(method) -> bool`` must find, by running the method, which methods' maps change
    with the text; it is called once for each method of `TEXT_AWARE`."""
    answers = {}
    for method in TEXT_AWARE:
        try:
            answer = is_text_aware(method)
        except Exception as err:  # the student's code: say where it broke
            raise AssertionError(f"Your is_text_aware raised {type(err).__name__} on {method!r}: {err}") from err
        require_answer(answer)
        answers[method] = bool(answer)
    wrong = [m for m in TEXT_AWARE if answers[m] != TEXT_AWARE[m]]
    if not wrong:
        aware = [m for m in TEXT_AWARE if TEXT_AWARE[m]]
        blind = [m for m in TEXT_AWARE if not TEXT_AWARE[m]]
        passed(f"your test tells all {len(TEXT_AWARE)} methods apart: {', '.join(blind)} text-blind, "
               f"{', '.join(aware)} text-aware.")
        return
    if all(answers.values()):
        raise AssertionError("Your test finds every method text-aware. Compare the *maps* of two prompts on "
                             "the same image, normalised to the same scale: the scores change with any "
                             "text, and self_attention's map never sees the text.")
    if not any(answers.values()):
        raise AssertionError("Your test finds every method text-blind. Explain two *different* phrases (the "
                             "two objects of a scene, say) and compare their maps; a threshold of exactly "
                             "0 may also be too strict for float maps: allow a small tolerance.")
    said = ", ".join(f"{m} {'text-aware' if answers[m] else 'text-blind'}" for m in wrong)
    raise AssertionError(f"Your test gets {len(wrong)} of {len(TEXT_AWARE)} methods wrong, first {wrong[0]}: it finds "
                         f"{said}, the library's methods are the opposite. Look at what the map of each is "
                         "computed from, and at how large a difference your test calls a change.")
