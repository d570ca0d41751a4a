"""The scores a model family can explain, as callables on its features (as pytorch-grad-cam's
``ClassifierOutputTarget``): one target per pair; ``target(features)`` [B, ..., E] -> [B, ...] broadcasts
over any middle axes (RISE's masked copies)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Target:
    """A score per pair as a function of its features; ``gradient`` gives dS/df for the Jacobian route."""

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def gradient(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(dS/df [B, E], S [B]) for features [B, E], by autograd."""
        with torch.enable_grad():
            point = features.detach().float().requires_grad_(True)
            score = self(point)
            (grad,) = torch.autograd.grad(score.sum(), point)
        return grad, score.detach()


def _per_pair(rows: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``rows`` [B, ...] shaped to broadcast against ``features`` [B, ..., E] along the middle axes."""
    return rows.reshape(rows.shape[0], *([1] * (features.ndim - 2)), *rows.shape[1:])


def cosine_gradient(f: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dS/df [P, E], S [P]) for S = cos(f, t), rows of ``f`` against unit rows of ``t``, in closed form:
    dS/df = (t - S f/|f|) / |f|."""
    norm = f.norm(dim=-1, keepdim=True)
    unit = f / norm
    score = (unit * t).sum(-1)
    return (t - score[:, None] * unit) / norm, score


class CosineTarget(Target):
    """cos(f, t): the similarity of each pair's features with its unit embedding t [B, E] (CLIP, BLIP's ITC)."""

    def __init__(self, embeddings: torch.Tensor) -> None:
        self.embeddings = embeddings

    def __len__(self) -> int:
        return len(self.embeddings)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        t = _per_pair(self.embeddings.float(), features)
        return F.cosine_similarity(features.float(), t, dim=-1)

    def gradient(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cosine_gradient(features.float(), self.embeddings.float())


class ClassTarget(Target):
    """One class's logit per pair (``probability=True``: its softmax probability) from logits [B, C]."""

    def __init__(self, classes: torch.Tensor, probability: bool = False) -> None:
        self.classes, self.probability = classes.long(), probability

    def __len__(self) -> int:
        return len(self.classes)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        chosen = features.float().softmax(-1) if self.probability else features.float()
        index = _per_pair(self.classes, features)[..., None].expand(*features.shape[:-1], 1)
        return chosen.gather(-1, index)[..., 0]


SIGLIP_SCORES = ("cosine", "logit", "probability")


class SigmoidTarget(CosineTarget):
    """SigLIP's sigmoid logit a cos(f, t) + b per pair (a = exp(logit_scale), b = logit_bias), or with
    ``probability`` its sigmoid: the model's probability that image and text match."""

    def __init__(self, embeddings: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                 probability: bool = False) -> None:
        super().__init__(embeddings)
        self.scale, self.bias, self.probability = scale.detach().float(), bias.detach().float(), probability

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        logit = self.scale * super().__call__(features) + self.bias
        return logit.sigmoid() if self.probability else logit

    def gradient(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return Target.gradient(self, features)
