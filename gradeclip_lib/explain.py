"""The front doors: `explain` (image maps) and `explain_text` (word weights). They turn user inputs
(PIL images, paths, tensors; strings or embeddings) into batches, group images by size, and call
the chosen method once per group."""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from collections.abc import Sequence

import torch

from .adapters import adapter_for, canonical_mode, family_of
from .adapters.clip import text_targets
from .blip.model import Blip
from .classifiers.classifier import Classifier
from .errors import UnsupportedModelError
from .explanation import Explanation, TextExplanation, _stack_if_same
from .images import ImageInput, as_image_list, prepare
from .methods.grad_eclip import ImageTerms, image_terms
from .methods.memory import check_memory
from .methods.registry import check_options, method_for, pair_seeds
from .models.clip import Clip
from .texts import as_text_list, unit_embeddings

TextInput = str | Sequence[str] | torch.Tensor


def _renamed(options: dict, images, texts) -> tuple:
    """``images`` and ``texts`` from the former keyword names ``image=`` and ``text=`` (with a warning)."""
    for old, new in (("image", "images"), ("text", "texts")):
        if old in options:
            warnings.warn(f"the keyword {old}= is now {new}= (one name for one idea across the API)",
                          DeprecationWarning, stacklevel=3)
            value = options.pop(old)
            images, texts = (value, texts) if old == "image" else (images, value)
    if images is None or texts is None:
        raise TypeError("give the images and the texts (or class targets) to explain")
    return images, texts


def distinct_images(items: list) -> tuple[list, torch.Tensor]:
    """The distinct images of ``items`` (the same object, or the same path, given several times counts
    once) and, for each item, the index of its image: so that texts sharing an image share its pass."""
    seen: dict = {}
    which = []
    for item in items:
        key = ("path", str(item)) if isinstance(item, (str, os.PathLike)) else ("object", id(item))
        which.append(seen.setdefault(key, len(seen)))
    first = {i: k for k, i in reversed(list(enumerate(which)))}
    return [items[first[i]] for i in range(len(seen))], torch.tensor(which, dtype=torch.long)


def pair_indices(n_images: int, n_texts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which image and which text each pair uses: one text per image, or one side shared by all."""
    if n_images == n_texts:
        ar = torch.arange(n_images)
        return ar, ar
    if n_texts == 1:
        return torch.arange(n_images), torch.zeros(n_images, dtype=torch.long)
    if n_images == 1:
        return torch.zeros(n_texts, dtype=torch.long), torch.arange(n_texts)
    raise ValueError(f"got {n_images} images and {n_texts} texts: give one text per image, or one of either.")


def explain(
    model: Clip | Classifier | Blip,
    images: ImageInput | Sequence[ImageInput],
    texts: TextInput | None = None,
    method: str = "grad_eclip",
    preprocess: str = "keep",
    batch_size: int | None = None,
    targets: int | str | Sequence[int | str] | torch.Tensor | None = None,
    **options,
) -> Explanation:
    """Explain the cosine similarity of each (image, text) pair with a map over the image's patches.

    ``preprocess="keep"`` keeps the aspect ratio (sides rounded to the patch size, positional
    embeddings interpolated); ``"crop"`` uses the model's standard centre crop. Images of the same
    size run as one batch (in chunks of ``batch_size`` pairs if given); an image given several times (the
    same object or path) is prepared and run once for all its texts. ``options`` go to the method,
    e.g. ``mode="paper"`` (the authors' code) or ``spatial_weight=False`` for Grad-ECLIP, whose default
    ``mode="forward"`` explains the model's own forward (``"faithful"``, its older name, still works).
    Methods seeded per pair (``random``) take ``seed`` as one integer per pair, or an integer ``s`` that
    gives pair ``p`` the seed ``s + p``.

    With a `Classifier` (``gl.load_classifier``), each map explains a class logit (``probability=True``:
    its softmax probability): give ``targets`` as class ids or names (or pass them as ``texts``). With a
    `Blip` (``gl.load_blip``), ``method="grad_eclip"`` explains the ITC cosine and ``"itm_gradcam"`` the
    ITM match logit.
    """
    if preprocess not in ("keep", "crop"):
        raise ValueError(f"preprocess must be 'keep' or 'crop', got {preprocess!r}")
    if targets is not None and not isinstance(model, Classifier):
        raise ValueError(f"targets= are the classes of a classifier; {type(model).__name__} maps explain texts: "
                         "give them as texts (strings or embeddings)")
    items = as_image_list(images)
    info = method_for(family_of(model), method, getattr(model, "name", None))
    adapter = adapter_for(model)
    check_options(info, options, f"a {adapter.description}", adapter.target)
    if "mode" in options:  # Grad-ECLIP's; "faithful" is the older name of "forward"
        options["mode"] = canonical_mode(options["mode"])
    if isinstance(model, Classifier):  # targets are classes (ids or names); the score is a class logit
        targets = model.class_index(texts if targets is None else targets)
    elif isinstance(model, Blip):  # targets are token ids; the method encodes the texts it needs
        if texts is None:
            raise ValueError("give the texts to explain the images against")
        targets = model.tokenize(texts)
    else:
        if texts is None:
            raise ValueError("give the texts to explain the images against (or embeddings [T, E])")
        targets = text_targets(model, texts)
    item_of, text_of = pair_indices(len(items), len(targets))
    unique, image_of_item = distinct_images(items)
    image_of = image_of_item[item_of]
    crop = model.crop_transform if preprocess == "crop" else None
    pixels, sizes = prepare(unique, model.patch_size, model.mean, model.std, crop=crop)

    groups: dict[tuple, list[int]] = defaultdict(list)  # image shape -> pair ids
    for pair, img in enumerate(image_of.tolist()):
        groups[tuple(pixels[img].shape)].append(pair)
    step = batch_size or len(image_of)
    for shape, pairs in groups.items():  # refused before any computation when it cannot fit
        check_memory(info, model, shape[-2:], min(len(pairs), step))
    seeds = pair_seeds(options.get("seed", 0), len(image_of)) if info.pair_seeds else None
    maps: list[torch.Tensor | None] = [None] * len(image_of)
    scores = torch.zeros(len(image_of))
    for pairs in groups.values():
        for start in range(0, len(pairs), step):
            chunk = pairs[start : start + step]
            imgs = sorted({int(image_of[p]) for p in chunk})
            local = {img: i for i, img in enumerate(imgs)}
            batch = torch.stack([pixels[i] for i in imgs]).to(model.device, model.dtype)
            index = torch.tensor([local[int(image_of[p])] for p in chunk], device=model.device)
            call = options if seeds is None else {**options, "seed": [seeds[p] for p in chunk]}
            with torch.enable_grad():
                out = info.fn(model, batch, targets[text_of[chunk]], index, **call)
            chunk_maps = out.maps.float().cpu()  # one device-to-host copy per chunk
            scores[chunk] = out.scores.float().cpu()
            for j, p in enumerate(chunk):
                maps[p] = chunk_maps[j]
    return Explanation(
        maps=_stack_if_same(maps),
        scores=scores,
        image_sizes=[sizes[int(i)] for i in image_of],
        method=method,
        options=dict(options, preprocess=preprocess),
    )


def grad_eclip_terms(
    model: Clip | Classifier | Blip, images: ImageInput | Sequence[ImageInput] | None = None,
    texts: TextInput | None = None, preprocess: str = "keep", **options
) -> ImageTerms:
    """Grad-ECLIP's factors (channel weights, values, spatial weight), to look at each term of the
    formula separately: for one image and one text (a class id or name for a classifier), or for pairs as
    in `explain` (one text per image, or one side shared) whose images have the same size, in one batch.
    Any model family; options as for ``explain``."""
    images, texts = _renamed(options, images, texts)
    if "mode" in options:
        options["mode"] = canonical_mode(options["mode"])
    adapter = adapter_for(model)
    items = as_image_list(images)
    targets = adapter.encode_targets(texts)
    image_of, text_of = pair_indices(len(items), len(targets))
    pixels, _ = adapter.prepare(items, preprocess)
    if len({tuple(p.shape) for p in pixels}) > 1:
        raise ValueError("grad_eclip_terms needs images of one size (one batch); call it once per size")
    batch = torch.stack(pixels).to(model.device, model.dtype)
    with torch.enable_grad():
        return image_terms(model, batch, targets[text_of.to(targets.device)], image_of.to(model.device), **options)


def image_targets(clip: Clip, images: ImageInput | torch.Tensor | Sequence[ImageInput]) -> torch.Tensor:
    """Unit image embeddings [I, E] from one image or several (PIL, paths: the standard 224 crop) or from
    embeddings [E] / [I, E]."""
    if isinstance(images, torch.Tensor) and images.ndim in (1, 2):
        return unit_embeddings(images, clip.embed_dim, "image").to(clip.device)
    return clip.encode_image(list(images) if isinstance(images, (list, tuple)) else images)


def image_target(clip: Clip, image: ImageInput | torch.Tensor) -> torch.Tensor:
    """The unit embedding [1, E] of one image or image embedding (see `image_targets`)."""
    embedding = image_targets(clip, image)
    if embedding.shape[0] != 1:
        raise ValueError(f"image_target takes one image; got {embedding.shape[0]} (use image_targets)")
    return embedding


def explain_text(
    model: Clip,
    images: ImageInput | torch.Tensor | Sequence[ImageInput] | None = None,
    texts: str | Sequence[str] | None = None,
    method: str = "grad_eclip",
    **options,
) -> TextExplanation | list[TextExplanation]:
    """Explain the image-text cosine with one weight per word piece of the text (summing to 1).

    ``images`` is a PIL image, a path, or an image embedding [E]; or several (a list, or embeddings
    [I, E]), paired with the texts as in `explain`: one text per image, or one side shared. One text
    against ten images or more runs the text once (Grad-ECLIP's shared route). A single image and a single
    text give one `TextExplanation`, anything else a list, one per pair.
    """
    images, texts = _renamed(options, images, texts)
    if not isinstance(model, Clip):
        raise UnsupportedModelError(f"word weights explain a CLIP's text tower; {type(model).__name__} models are "
                                    "explained over the image only, with gl.explain")
    info = method_for("clip_text", method, model.name)
    check_options(info, options, "a CLIP text tower", text=True)
    if "mode" in options:
        options["mode"] = canonical_mode(options["mode"])
    one_text = isinstance(texts, str)
    texts = as_text_list(texts)
    targets = image_targets(model, images)
    image_of, text_of = pair_indices(len(targets), len(texts))
    ids = model.tokenize(texts)
    with torch.enable_grad():
        out = info.fn(model, ids[text_of.to(ids.device)], targets[image_of.to(targets.device)], **options)
    results = []
    for row, t in enumerate(text_of.tolist()):
        eos = int(ids[t].argmax())
        pieces = model.decode_tokens(ids[t, 1:eos].tolist())
        results.append(
            TextExplanation(texts[t], pieces, out.maps[row, 1:eos].float().cpu(), float(out.scores[row]), method)
        )
    return results[0] if one_text and len(results) == 1 else results
