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


ORDERS = ("perfect", "random")


def perfect_and_random(clip, n: int = 8, seed: int = 90_000) -> dict[str, torch.Tensor]:
    """The mean probability of the right phrase [3] after deleting 0, 5 and 50 % of the pixels (replaced by
    the protocol's noise) in two orders, the object's pixels first ("perfect") and a random order, on ``n``
    one-object scenes of the worked answer (its first ``n``)."""
    from torchvision.transforms.functional import to_tensor

    from ..evaluation.perturb import noise_image
    from ..synthetic import make_scenes

    size = image_size(clip)
    counts = [0, int(0.05 * size * size), int(0.5 * size * size)]
    gen = torch.Generator().manual_seed(0)
    curves: dict[str, list[torch.Tensor]] = {"perfect": [], "random": []}
    for i, scene in enumerate(make_scenes(n, seed=seed, n_objects=1, size=size)):
        image = to_tensor(scene.image)
        score = phrase_probability(clip, scene.objects[0].phrase)
        noise = noise_image(f"probe-{i}", size, size).float() / 255
        mask = torch.from_numpy(scene.objects[0].mask).float()
        for name, saliency in (("perfect", mask + 1e-3 * torch.rand(mask.shape, generator=gen)),
                               ("random", torch.rand(mask.shape, generator=gen))):
            curves[name].append(deletion_reference(image, saliency, noise, counts, score))
    return {name: torch.stack(c).mean(0) for name, c in curves.items()}


def check_prediction(perfect_at_5: object, random_at_5: object, lower_at_50: object, clip=None, n: int = 8) -> None:
    """Exercise 7.1: the probability of the right phrase after deleting 5 % of the pixels in the perfect
    order and in a random order (each right within 0.2), and which order is lower after 50 % ("perfect"
    or "random"); measured on ``n`` one-object scenes (the worked answer: 50)."""
    from ..models import load_clip
    from .checking import as_choice, as_number, check_choice, check_number

    perfect = as_number(perfect_at_5, "perfect_at_5", 0.0, 1.0)
    random = as_number(random_at_5, "random_at_5", 0.0, 1.0)
    lower = as_choice(lower_at_50, ORDERS, "lower_at_50", {"object first": "perfect", "the perfect map": "perfect",
                                                            "perfect map": "perfect", "random order": "random"})
    found = perfect_and_random(clip or load_clip("shapes"), n)
    p, r = found["perfect"], found["random"]
    measured = (f"on {n} one-object scenes the probability goes from {float(p[0]):.2f} to {float(p[1]):.2f} after "
                f"5 % in the perfect order and to {float(r[1]):.2f} in a random order; after 50 %, "
                f"{float(p[2]):.2f} and {float(r[2]):.2f}")
    check_number(perfect, float(p[1]), 0.2, "perfect_at_5", f" ({measured}): the whole object is within the top "
                 "5 % of the pixels in most scenes")
    check_number(random, float(r[1]), 0.2, "random_at_5", f" ({measured}): 5 % of random pixels rarely destroy "
                 "the object")
    right = "perfect" if p[2] < r[2] else "random"
    check_choice(lower, right, ORDERS, "lower_at_50", measured, hints={
        "random": "Noise over half of the image destroys part of the object by chance, but the perfect order "
                  "has removed all of it."})
    passed(f"{measured}. The worked answer measures it on 50 scenes, with Grad-ECLIP's order for comparison.")
