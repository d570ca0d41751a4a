"""Chapter 6 (the alternatives): telling a text-blind method from a text-aware one by experiment."""

from __future__ import annotations

from collections.abc import Callable

import torch

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


# what the prediction check runs each method with: few RISE masks and M2IB steps, enough to see the text act
_FAST = {"rise": {"n_masks": 50}, "m2ib": {"steps": 3, "samples": 2}}
GROUPS = ("text-blind", "text-aware", "the same")


def text_changes(clip, methods: list[str], seed: int = 7, tolerance: float = 1e-3) -> dict[str, float]:
    """For each method, the largest difference between its maps (each scaled to a maximum of 1) of one
    two-object scene explained with each object's phrase: 0 for a map that ignores the text."""
    from ..explain import explain
    from ..shapesworld.evaluate import image_size
    from ..synthetic import make_scenes

    scene = make_scenes(1, seed=seed, n_objects=2, size=image_size(clip))[0]
    phrases = [o.phrase for o in scene.objects]
    found = {}
    for method in methods:
        maps = explain(clip, [scene.image] * 2, phrases, method=method, **_FAST.get(method, {})).maps.float()
        a, b = (m / m.abs().max().clamp_min(1e-12) for m in maps)
        found[method] = float((a - b).abs().max())
    return found


def check_prediction(changes: object, four_objects: object, rows: list[dict] | None = None, clip=None) -> None:
    """Exercise 6.1: ``changes`` maps each method of `TEXT_AWARE` (and m2ib, rise) to whether its map on one
    image changes when the prompt names another object (True / False), measured on one two-object scene;
    ``four_objects`` names the group ("text-blind", "text-aware" or "the same") whose best method points
    better on four-object scenes, read from the chapter's table (``rows``, as `localisation_table` gives)."""
    from ..models import load_clip
    from .checking import as_choice, as_yes_no, check_choice

    require_answer(changes)
    if not isinstance(changes, dict):
        raise AssertionError("changes: expected a dict, {method: True or False}.")
    methods = [*TEXT_AWARE, "m2ib", "rise"]
    missing = [m for m in methods if m not in changes]
    if missing:
        raise AssertionError(f"changes: give a prediction for every method; missing: {', '.join(missing)}.")
    said = {m: as_yes_no(changes[m], f"changes[{m!r}]") for m in methods}
    group = as_choice(four_objects, GROUPS, "four_objects", {"aware": "text-aware", "blind": "text-blind",
                                                             "same": "the same", "neither": "the same"})
    differences = text_changes(clip or load_clip("shapes"), methods)
    measured = {m: d > 1e-3 for m, d in differences.items()}
    wrong = [m for m in methods if said[m] != measured[m]]
    if wrong:
        m = wrong[0]
        why = ("its map is computed from the image encoder's attention alone: the prompt never reaches it"
               if not measured[m] else "it reads the text (through a gradient, a product with the text embedding, "
               "or masked scores)")
        raise AssertionError(f"changes: {len(wrong)} of {len(methods)} wrong, first {m}: you predicted "
                             f"{said[m]}, and on one scene its maps of the two phrases differ by at most "
                             f"{differences[m]:.3g} (scaled to a maximum of 1): {why}.")
    if rows is None:
        raise AssertionError("four_objects: pass the chapter's table (rows) to the check.")
    best = {}
    for r in rows:
        if r["objects"] == 4 and r["method"] in methods:
            rate = float(torch.as_tensor(r["hits"]).float().mean())
            key = "text-aware" if measured[r["method"]] else "text-blind"
            best[key] = max(best.get(key, (0.0, "")), (rate, r["method"]))
    (aware, a_name), (blind, b_name) = best["text-aware"], best["text-blind"]
    right = "the same" if abs(aware - blind) < 0.05 else "text-aware" if aware > blind else "text-blind"
    table = (f"on four objects the best text-aware method ({a_name}) points {aware:.2f}, the best text-blind one "
             f"({b_name}) {blind:.2f}")
    check_choice(group, right, GROUPS, "four_objects", table, hints={
        "text-blind": "With four objects a text-blind map can at best find *an* object, not the named one.",
        "the same": "With four objects a text-blind map can at best find *an* object, not the named one."})
    blind_names = [m for m in methods if not measured[m]]
    passed(f"on one two-object scene, only {' and '.join(blind_names)} give the same map for both phrases; {table} "
           "(the chapter's table, 200 scenes).")
