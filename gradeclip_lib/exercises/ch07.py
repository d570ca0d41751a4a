"""Chapter 7 (faithfulness): a deletion curve, written by the student, against the library's protocol."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..evaluation.perturb import perturbed, pixel_ranks
from ..shapesworld.evaluate import PROMPTS, image_size
from .checking import check_tensor, require_answer


def one_or_many(score: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A score of images [N, 3, H, W] -> [N] that also takes one image [3, H, W] -> a scalar, so that a
    student's curve may score its images one by one or all at once."""
    def either(images: torch.Tensor) -> torch.Tensor:
        out = score(images if images.ndim == 4 else images[None])
        return out if images.ndim == 4 else out[0]

    return either


def deletion_cases(seed: int = 7, height: int = 24, width: int = 20):
    """An image, a saliency map without ties, a substrate, checkpoint counts and a linear score:
    small enough to check in milliseconds, not square so that axes cannot be swapped unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(3, height, width, generator=gen)
    saliency = torch.rand(height, width, generator=gen)
    substrate = torch.rand(3, height, width, generator=gen)
    weights = torch.randn(3, height, width, generator=gen)
    counts = [0, 40, 80, 120, 160, 240]

    @one_or_many
    def score(batch: torch.Tensor) -> torch.Tensor:
        return (batch * weights).sum((1, 2, 3))

    return image, saliency, substrate, counts, score


def deletion_reference(image, saliency, substrate, counts, score, mode="deletion", order=1.0, fill=None):
    """The library's deletion (or insertion) curve [len(counts)] for one image, built with
    `gl.evaluation.perturb`: what `check_deletion_curve` compares with."""
    n = len(counts)
    ranks = pixel_ranks((order * saliency)[None]).expand(n, -1)
    images = image[None].expand(n, -1, -1, -1)
    noise = (substrate if fill is None else fill)[None].expand(n, -1, -1, -1)
    return score(perturbed(images, ranks, torch.tensor(counts), mode, noise))


def check_deletion_curve(deletion_curve: Callable) -> None:
    """``deletion_curve(image [3, H, W], saliency [H, W], substrate [3, H, W], counts, score) -> [len(counts)]``:
    the score after the ``counts[j]`` most salient pixels are replaced by the substrate's, as the
    library's deletion protocol computes it (`gl.evaluation.perturb`)."""
    image, saliency, substrate, counts, score = deletion_cases()
    try:
        got = deletion_curve(image.clone(), saliency.clone(), substrate.clone(), list(counts), score)
    except Exception as err:  # the student's code: say where it broke
        raise AssertionError(f"Your deletion_curve raised {type(err).__name__}: {err}") from err
    require_answer(got)
    if isinstance(got, (list, tuple)):
        got = torch.stack([torch.as_tensor(g).float() for g in got])
    expected = deletion_reference(image, saliency, substrate, counts, score)
    mistakes = {
        "Delete the *most* salient pixels first (sort the saliency in descending order).":
            lambda: deletion_reference(image, saliency, substrate, counts, score, order=-1.0),
        "Deleted pixels take the substrate's values, not black.":
            lambda: deletion_reference(image, saliency, substrate, counts, score, fill=torch.zeros_like(substrate)),
        "That is insertion (the top pixels kept, the rest black); deletion replaces the top pixels.":
            lambda: deletion_reference(image, saliency, substrate, counts, score, mode="insertion"),
    }
    check_tensor(got, expected, "Your deletion curve", mistakes)


def phrase_probability(clip, phrase: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A score for `check_deletion_curve`'s signature on a ShapesWorld model: the zero-shot probability
    of ``phrase`` among the 30 "a <colour> <shape>" prompts, for images [N, 3, H, W] with values in [0, 1]."""
    classifier = clip.encode_text(PROMPTS).T.float()
    target = PROMPTS.index(phrase)
    mean = torch.tensor(clip.mean).view(1, 3, 1, 1)
    std = torch.tensor(clip.std).view(1, 3, 1, 1)
    scale = float(clip.model.logit_scale.exp())
    side = image_size(clip)

    @one_or_many
    @torch.no_grad()
    def score(batch: torch.Tensor) -> torch.Tensor:
        x = (batch.float() - mean) / std
        if x.shape[-2:] != (side, side):  # the model's own input size
            x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        x = x.to(clip.device, clip.dtype)
        f = torch.nn.functional.normalize(clip.model.encode_image(x).float(), dim=-1)
        return (scale * f @ classifier.to(f.device)).softmax(-1)[:, target].cpu()

    return score
