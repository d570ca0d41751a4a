"""Chapter 7 (faithfulness): a deletion curve, written by the student, against the library's protocol."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..evaluation.perturb import perturbed, pixel_ranks
from ..shapesworld.evaluate import PROMPTS, image_size
from .checking import call, check_tensor, close, passed, require_answer


def one_or_many(score: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A score of images [N, 3, H, W] -> [N] that also takes one image [3, H, W] -> a scalar, so that a
    student's curve may score its images one by one or all at once."""
    def either(images: torch.Tensor) -> torch.Tensor:
        out = score(images if images.ndim == 4 else images[None])
        return out if images.ndim == 4 else out[0]

    return either


def deletion_cases(seed: int = 7, height: int = 24, width: int = 20):
    """An image, a saliency map without ties, a substrate, checkpoint counts and a linear score:
    small enough to check in milliseconds, not square so that axes cannot be swapped unnoticed. The
    saliency is signed (a ranking by its absolute value differs) and the counts are not multiples of
    the image's width (a ranking by rows or columns differs)."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(3, height, width, generator=gen)
    saliency = torch.randn(height, width, generator=gen)
    substrate = torch.rand(3, height, width, generator=gen)
    weights = torch.randn(3, height, width, generator=gen)
    counts = [0, 37, 80, 121, 160, 243]

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
    seen: list[torch.Tensor] = []  # the images the student's function scores, in order: its intermediates

    @one_or_many
    def watched(batch: torch.Tensor) -> torch.Tensor:
        seen.extend(torch.as_tensor(batch).detach().float().reshape(-1, *image.shape))
        return score(batch)

    got = call(deletion_curve, image, saliency, substrate, list(counts), watched,
               names=("image", "saliency", "substrate", "counts", "score"))
    require_answer(got)
    expected = deletion_reference(image, saliency, substrate, counts, score)
    flat = saliency.flatten()
    mistakes = {
        "Delete the *most* salient pixels first (sort the saliency in descending order).":
            lambda: deletion_reference(image, saliency, substrate, counts, score, order=-1.0),
        "Rank the pixels by their saliency, not by its absolute value: a negative value is evidence against, "
        "the least reason to delete a pixel.":
            lambda: deletion_reference(image, saliency.abs(), substrate, counts, score),
        "Deleted pixels take the substrate's values, not black.":
            lambda: deletion_reference(image, saliency, substrate, counts, score, fill=torch.zeros_like(substrate)),
        "Deleted pixels take the substrate's value at the same pixel, not its mean colour.":
            lambda: deletion_reference(image, saliency, substrate, counts, score,
                                       fill=substrate.mean((1, 2), keepdim=True).expand_as(substrate)),
        "That is insertion (the top pixels kept, the rest black); deletion replaces the top pixels.":
            lambda: deletion_reference(image, saliency, substrate, counts, score, mode="insertion"),
        "Each point deletes exactly counts[j] pixels: yours deletes one more (a slice such as order[:n + 1]).":
            lambda: deletion_reference(image, saliency, substrate, [min(c + 1, flat.numel()) for c in counts], score),
        "Each point deletes exactly counts[j] pixels: yours deletes one fewer (a slice such as order[:n - 1]).":
            lambda: deletion_reference(image, saliency, substrate, [max(c - 1, 0) for c in counts], score),
    }
    try:
        worst = check_tensor(got, expected, "Your deletion curve", mistakes,
                             where=lambda i: f"checkpoint {i[0]} ({counts[i[0]]} pixels deleted)")
    except AssertionError as err:
        if "not right yet" not in str(err):  # no named mistake: the first image scored that differs, if any
            _first_intermediate(seen, image, saliency, substrate, counts)
        raise
    scored = " (and the images you scored are the library's)" if len(seen) == len(counts) else ""
    passed(f"your curve equals the library's deletion protocol at {len(counts)} checkpoints "
           f"({', '.join(map(str, counts))} of {flat.numel()} pixels deleted, an image of {image.shape[-2]} x "
           f"{image.shape[-1]}; largest difference {worst:.1g}){scored}.")


def _first_intermediate(seen, image, saliency, substrate, counts) -> None:
    """Fail on the first image the student scored that differs from the library's image at the same
    checkpoint (where the curve went wrong); return if the student did not score one image per point."""
    ranks = pixel_ranks(saliency[None]).expand(len(counts), -1)
    images = perturbed(image[None].expand(len(counts), -1, -1, -1), ranks, torch.tensor(counts), "deletion",
                       substrate[None].expand(len(counts), -1, -1, -1))
    if len(seen) != len(counts):
        return
    for j, (mine, theirs) in enumerate(zip(seen, images)):
        if close(mine, theirs.float()):
            continue
        deleted = int((mine != image).any(0).sum())
        c, y, x = (int(i) for i in ((mine - theirs).abs() > 1e-6).nonzero()[0])
        raise AssertionError(
            f"Your deletion curve: the image you scored at checkpoint {j} ({counts[j]} pixels to delete) is not "
            f"the library's: you changed {deleted} pixels, the library {counts[j]}; the first that differs is "
            f"(row {y}, column {x}), channel {c}: yours {float(mine[c, y, x]):.3g}, the library's "
            f"{float(theirs[c, y, x]):.3g} (the original {float(image[c, y, x]):.3g}, the substrate "
            f"{float(substrate[c, y, x]):.3g}).")


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
