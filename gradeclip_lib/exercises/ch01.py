"""Chapter 1 (CLIP and its attention): the class token's attention over the patches, from q and k."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..attention import attention_maps
from ..images import ImageInput, prepare
from ..methods.common import vision_pass
from ..models.clip import Clip
from .checking import as_yes_no, check_tensor, passed


@dataclass
class QueriesKeys:
    """The last block's queries and keys per head, [H, N + 1, d] each (token 0 is the class token,
    then the patches row by row), and the patch grid (h, w)."""

    q: torch.Tensor
    k: torch.Tensor
    grid: tuple[int, int]


@torch.no_grad()
def last_block_qk(clip: Clip, image: ImageInput) -> QueriesKeys:
    """The queries and keys of the image tower's last block for one image (keep-size input)."""
    pixels, _ = prepare([image], clip.patch_size, clip.mean, clip.std)
    batch = pixels[0][None].to(clip.device, clip.dtype)
    run = vision_pass(clip, batch, torch.zeros(1, dtype=torch.long, device=clip.device), first=-1, grad=False)
    record = run.records[-1]
    q, k, _ = (record.split_heads(t)[0].cpu() for t in record.qkv())
    return QueriesKeys(q, k, run.grid)


def check_attention(answer: object, qk: QueriesKeys, clip: Clip, image: ImageInput) -> None:
    """The class token's attention to each patch, one map per head [H, h, w], as `gl.attention_maps`."""
    expected = attention_maps(clip, image)[0, -1]
    fresh = last_block_qk(clip, image)
    for name in ("q", "k"):
        if not torch.allclose(getattr(fresh, name), getattr(qk, name), rtol=1e-5, atol=1e-6):
            raise AssertionError(
                f"Your code changed `qk.{name}` in place (its values are no longer the model's): work on a copy "
                f"(`{name} = qk.{name}.clone()`) or use operations that return a new tensor (`{name} = {name} / s` "
                f"instead of `{name} /= s`), then run the cell with `checks.last_block_qk` and your code again.")
    logits = qk.q @ qk.k.transpose(-1, -2)  # [H, N+1, N+1]
    scale = math.sqrt(qk.q.shape[-1])
    h, w = qk.grid

    def grid(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, h, w)

    mistakes = {
        "Divide the logits by sqrt(d), the width of one head, before the softmax.":
            lambda: grid(logits.softmax(-1)[:, 0, 1:]),
        "Divide the logits by sqrt(d), not by d: the scale is the square root of one head's width.":
            lambda: grid((logits / scale**2).softmax(-1)[:, 0, 1:]),
        "The softmax runs over all N + 1 keys, the class token's own key included; drop the class "
        "token's column only after it.": lambda: grid((logits / scale)[:, 0, 1:].softmax(-1)),
        "The softmax runs over the keys (the last axis), not over the queries.":
            lambda: grid((logits / scale).softmax(-2)[:, 0, 1:]),
        "That is the attention every patch pays to the class token (column 0); you want the class "
        "token's own row (row 0).": lambda: grid((logits / scale).softmax(-1)[:, 1:, 0]),
        "Drop the class token's own column (token 0): keep the N patches, laid out on the grid.":
            lambda: (logits / scale).softmax(-1)[:, 0],
        "Keep one map per head: do not average the heads.":
            lambda: grid((logits / scale).softmax(-1)[:, 0, 1:]).mean(0),
    }
    heads = qk.q.shape[0]
    worst = check_tensor(answer, expected, "The attention maps", mistakes,
                         where=lambda i: f"head {i[0]}, patch (row {i[1]}, column {i[2]})",
                         case=f"(this image: {heads} heads on a {h} x {w} grid)")
    passed(f"your attention maps equal gl.attention_maps' last layer on this image ({heads} heads on a "
           f"{h} x {w} grid of patches; largest difference {worst:.1g}).")


def check_prediction(attention_differs: object, score_differs: object, clip: Clip | None = None) -> None:
    """Exercise 1.1: for one ShapesWorld scene with two objects and the two prompts that name them, does
    the class token's last-layer attention differ between the prompts (no), and does S (yes)? The
    check measures both on the worked answer's scene (seed 3) with the ShapesWorld model."""
    attention = as_yes_no(attention_differs, "attention_differs")
    score = as_yes_no(score_differs, "score_differs")
    from ..explain import explain
    from ..models import load_clip
    from ..synthetic import make_scenes

    clip = clip or load_clip("shapes")
    scene = make_scenes(1, seed=3, n_objects=2, size=64)[0]
    phrases = [o.phrase for o in scene.objects]
    maps = [attention_maps(clip, scene.image)[0, -1] for _ in phrases]  # the call takes no prompt
    same = bool(torch.equal(maps[0], maps[1]))
    scores = explain(clip, [scene.image] * 2, phrases).scores.tolist()
    measured = (f"the last layer's attention is {'the same' if same else 'different'} for both prompts "
                f"(gl.attention_maps takes no prompt), and S is {scores[0]:.3f} for {phrases[0]!r}, "
                f"{scores[1]:.3f} for {phrases[1]!r}")
    if attention != (not same):
        raise AssertionError(f"attention_differs: you predicted {attention}; measured on one scene: {measured}. "
                             "The attention is computed inside the image encoder, which never sees the text.")
    if score != (abs(scores[0] - scores[1]) > 1e-6):
        raise AssertionError(f"score_differs: you predicted {score}; measured on one scene: {measured}. S is the "
                             "cosine between the image's embedding and the text's: another text, another S.")
    passed(f"on one scene with two objects, {measured}. So an explanation of S must depend on the text, which "
           "raw attention cannot.")
