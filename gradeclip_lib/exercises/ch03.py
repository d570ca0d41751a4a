"""Chapter 3 (Grad-ECLIP on text): word weights from each token's evidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..explain import explain_text, image_target
from ..images import ImageInput
from ..methods.grad_eclip import text_evidence
from ..models.clip import Clip
from .checking import as_choice, as_number, call, check_choice, check_number, check_tensor, passed


@dataclass
class WordEvidence:
    """One text's tokens and their signed evidence (Grad-ECLIP before the ReLU), positions 0 .. eos:
    ``tokens[0]`` is the start token, ``tokens[-1]`` the end token, the word pieces lie between."""

    tokens: list[str]
    evidence: torch.Tensor


def word_evidence(clip: Clip, image: ImageInput, text: str) -> WordEvidence:
    """The evidence of every token of ``text`` for its cosine with ``image`` (faithful mode)."""
    ids = clip.tokenize([text])
    eos = int(ids[0].argmax())
    with torch.enable_grad():
        total, _ = text_evidence(clip, ids, image_target(clip, image)[None])
    pieces = clip.decode_tokens(ids[0, 1:eos].tolist())
    return WordEvidence(["<start>", *pieces, "<end>"], total[0, : eos + 1].detach().float().cpu())


def check_word_weights(word_weights: Callable, words: WordEvidence, clip: Clip, image: ImageInput,
                       text: str) -> None:
    """``word_weights(evidence)`` must give one weight per word piece (start and end tokens left out),
    summing to 1, as `gl.explain_text`; also on evidence of its own where the start and end tokens, or
    some word pieces, carry large positive, or negative, evidence."""
    e = words.evidence

    def share(t: torch.Tensor) -> torch.Tensor:
        return t / t.sum().clamp_min(1e-12)

    def mistakes(e: torch.Tensor) -> dict:
        pieces = e[1:-1]
        return {
            "Set negative evidence to zero (ReLU) before normalising.": lambda: pieces / pieces.sum(),
            "Set negative evidence to zero (ReLU), do not take its absolute value: negative evidence "
            "speaks against the image.": lambda: share(pieces.abs()),
            "Normalise over the word pieces only: leave the start and end tokens out of the sum.":
                lambda: F.relu(pieces) / F.relu(e).sum().clamp_min(1e-12),
            "Normalise so that the weights sum to 1 (divide by their sum, not their maximum).":
                lambda: F.relu(pieces) / F.relu(pieces).max().clamp_min(1e-12),
            "The weights come from the ReLU and a sum, not from a softmax.": lambda: pieces.softmax(-1),
            "One weight per word piece: leave out the start token (position 0) and the end token (the last).":
                lambda: share(F.relu(e)),
            "The word pieces are positions 1 to eos - 1 (e[1:-1]); your slice starts one too early.":
                lambda: share(F.relu(e[:-2])),
            "The word pieces are positions 1 to eos - 1 (e[1:-1]); your slice starts one too late.":
                lambda: share(F.relu(e[2:])),
        }

    def where(i: tuple[int, ...]) -> str:
        return f'word piece {i[0]} ("{words.tokens[i[0] + 1]}")'

    n = len(e) - 2
    worst = check_tensor(call(word_weights, e, names=("evidence",)), explain_text(clip, image, text).weights,
                         "Your word weights", mistakes(e), where=where,
                         case=f'(this caption, "{text}": {n} word pieces)')
    big = float(e.abs().max()) * 3
    ends = e.clone()
    ends[0] = ends[-1] = big
    signs = e.clone()
    signs[1] = -big  # a word piece with strong negative evidence
    signs[2] = big
    cases = {"start and end tokens with large positive evidence": ends,
             "a word piece with strong negative evidence": signs}
    for what, evidence in cases.items():
        got = call(word_weights, evidence, names=("evidence",))
        worst = max(worst, check_tensor(got, share(F.relu(evidence[1:-1])), "Your word weights", mistakes(evidence),
                                        where=where, case=f"(the check's own evidence, with {what})"))
    passed(f'your word weights equal gl.explain_text\'s on "{text}" ({n} word pieces) and on 2 cases of the '
           "check's own (large evidence on the start and end tokens; a strongly negative word piece); "
           f"largest difference {worst:.1g}.")


PIECES = ("a", "photo", "of", "colour", "shape")
_PIECE_SPELLINGS = {"<colour>": "colour", "color": "colour", "<color>": "colour", "the colour": "colour",
                    "colour word": "colour", "<shape>": "shape", "the shape": "shape", "shape word": "shape",
                    "yellow": "colour", "circle": "shape"}


def template_weights(clip: Clip, n: int = 20, seed: int = 80_000) -> torch.Tensor:
    """Grad-ECLIP's mean word weights [6] of "a photo of <colour> <shape>" on ``n`` one-object scenes
    described by that caption: "a", "photo", "of", "a", the colour, the shape."""
    from ..shapesworld.evaluate import image_size
    from ..synthetic import make_scenes

    scenes = make_scenes(n, seed=seed, n_objects=1, size=image_size(clip))
    weights = explain_text(clip, [s.image for s in scenes], [f"a photo of {s.objects[0].phrase}" for s in scenes])
    return torch.stack([w.weights for w in weights]).float().mean(0)


def check_prediction(most: object, template_share: object, clip: Clip | None = None, n: int = 20) -> None:
    """Exercise 3.1: which word piece of "a photo of a <colour> <shape>" gets the most weight (one of
    `PIECES`), and how much the four template pieces get together (a number in [0, 1], right within
    0.1). Measured on ``n`` scenes (the worked answer: 100)."""
    from ..models import load_clip

    most = as_choice(most, PIECES, "most", _PIECE_SPELLINGS)
    share = as_number(template_share, "template_share", 0.0, 1.0)
    mean = template_weights(clip or load_clip("shapes"), n)
    named = dict(zip(["a", "photo", "of", "a (second)", "colour", "shape"], mean.tolist()))
    measured = f"on {n} scenes the mean weights are " + ", ".join(f"{k} {v:.3f}" for k, v in named.items())
    top = max(("a", "photo", "of", "colour", "shape"), key=lambda k: max(named[k], named.get(f"{k} (second)", 0)))
    check_choice(most, top, PIECES, "most", measured, hints={
        "colour": "The colour matters, but here the shape word carries more of the caption's direction.",
        **{p: "The template is in every training caption, so it cannot tell images apart: the object words "
              "take nearly all the weight." for p in ("a", "photo", "of")}})
    template = float(mean[:4].sum())
    check_number(share, template, 0.1, "template_share", f" ({measured})")
    passed(f"{measured}: the {top} word gets the most and the template {template:.3f} together (you said "
           f"{share:g}). The worked answer measures it on 100 scenes.")


TARGETS = ("the object words", "the template words")
_TARGET_SPELLINGS = {"object": TARGETS[0], "object words": TARGETS[0], "colour and shape": TARGETS[0],
                     "the colour and the shape": TARGETS[0], "template": TARGETS[1], "template words": TARGETS[1],
                     "filler": TARGETS[1], "the filler": TARGETS[1], "the filler words": TARGETS[1]}


def mismatch_weights(clip: Clip, n: int = 20, seed: int = 80_000) -> dict[str, tuple[float, float, float]]:
    """For "a lovely photo of <phrase>" on ``n`` one-object scenes, with the scene's own phrase ("matching")
    and the next scene's ("not matching"): (mean S, mean weight of the five template pieces together, mean
    weight of the colour and shape words together)."""
    from ..shapesworld.evaluate import image_size
    from ..synthetic import make_scenes

    scenes = make_scenes(n, seed=seed, n_objects=1, size=image_size(clip))
    names = [s.objects[0].phrase for s in scenes]
    found = {}
    for label, phrases in (("matching", names), ("not matching", names[1:] + names[:1])):
        out = explain_text(clip, [s.image for s in scenes], [f"a lovely photo of {p}" for p in phrases])
        mean = torch.stack([w.weights for w in out]).float().mean(0)
        found[label] = (sum(float(w.score) for w in out) / len(out), float(mean[:5].sum()), float(mean[5:].sum()))
    return found


def check_mismatch(weight_goes_to: object, clip: Clip | None = None, n: int = 20) -> None:
    """Exercise 3.3: where most of the weight goes when the caption names the wrong object (one of
    `TARGETS`), against ``n`` scenes of the discussion's experiment (it uses 100)."""
    from ..models import load_clip

    chosen = as_choice(weight_goes_to, TARGETS, "weight_goes_to", _TARGET_SPELLINGS)
    found = mismatch_weights(clip or load_clip("shapes"), n)
    (s_match, t_match, o_match), (s_wrong, t_wrong, o_wrong) = found["matching"], found["not matching"]
    right = TARGETS[1] if t_wrong > o_wrong else TARGETS[0]
    measured = (f"on {n} scenes, with the right object the template words take {t_match:.2f} of the weight and the "
                f"object words {o_match:.2f} (S = {s_match:.3f}); with the wrong object {t_wrong:.2f} and "
                f"{o_wrong:.2f} (S = {s_wrong:.3f})")
    check_choice(chosen, right, TARGETS, "weight_goes_to", measured, hints={
        TARGETS[0]: "The wrong object words carry mostly negative evidence, which the ReLU drops; the normalisation "
                    "to a sum of 1 then gives the whole weight to whatever is left, however small."})
    passed(f"{measured}. Word weights are relative: read them with S. The discussion uses 100 scenes.")
