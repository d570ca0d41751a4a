"""Maps read as segmentations of the named object, as Chefer et al. (2021) and LeGrad evaluate on
ImageNet-segmentation: pixel accuracy and mean IoU of the map binarised at its mean, and the average
precision of its values ranking the object's pixels. One value per map, so that a table can give each
method's mean with an interval over scenes.

Like the localisation metrics, these take maps already upsampled to the image and boolean masks of the
same size."""

from __future__ import annotations

import torch

from .localisation import Maps, _pairs


def binarise(emap: torch.Tensor) -> torch.Tensor:
    """Foreground where the map exceeds its mean (Chefer et al.'s threshold)."""
    return emap > emap.mean()


def pixel_accuracy(maps: Maps, masks: Maps) -> torch.Tensor:
    """Share [B] of pixels on which the binarised map agrees with the mask."""
    return torch.tensor([float((binarise(m) == k).float().mean()) for m, k in _pairs(maps, masks)])


def mean_iou(maps: Maps, masks: Maps) -> torch.Tensor:
    """Mean [B] over the two classes (object, background) of the binarised map's intersection over union."""
    out = []
    for emap, mask in _pairs(maps, masks):
        found = binarise(emap)
        ious = []
        for pred, true in ((found, mask), (~found, ~mask)):
            union = (pred | true).sum()
            ious.append(float((pred & true).sum() / union) if union > 0 else 1.0)
        out.append(sum(ious) / 2)
    return torch.tensor(out)


def average_precision(maps: Maps, masks: Maps) -> torch.Tensor:
    """Average precision [B] of each map's values as scores of the mask's pixels: the sum over the distinct
    thresholds, from the highest, of precision times the gain in recall (scikit-learn's definition)."""
    out = []
    for emap, mask in _pairs(maps, masks):
        scores, labels = emap.flatten(), mask.flatten().float()
        if labels.sum() == 0:
            raise ValueError("an empty mask: the object is not in the image")
        order = torch.argsort(scores, descending=True)
        scores, labels = scores[order], labels[order]
        last = torch.ones_like(scores, dtype=torch.bool)  # the last pixel of each run of tied scores
        last[:-1] = scores[1:] != scores[:-1]
        true_pos = labels.cumsum(0)[last]
        counted = torch.arange(1, len(scores) + 1, dtype=torch.float)[last]
        recall = true_pos / labels.sum()
        gain = torch.diff(recall, prepend=recall.new_zeros(1))
        out.append(float((gain * true_pos / counted).sum()))
    return torch.tensor(out)
