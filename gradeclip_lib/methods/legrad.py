"""LeGrad (Bousselham et al., ICCV 2025; the authors' package ``legrad-torch`` 1.1, ``LeWrapper``).

For each block l from ``layer_index`` (default -2: the last two) to the last, a score s_l of that block's
output tokens x_l; the block's map is the gradient of s_l with respect to its attention probabilities A_l,
clamped at 0, averaged over heads and over every query row, at the patch columns; the maps are summed over
the blocks and min-maxed. dS/dA_h[t, i] = g_h[t] . v_h[i] from the gradient g at the attention output before
its projection (as in GAME), so no probability has to be stored by the model.

CLIP ViT (the authors' definition): s_l = normalize(ln_post(mean over all tokens of x_l) proj) . t for the
unit text embedding t. A timm classifier (the authors' code has none; our reading of the same idea): s_l is
the explained class logit (or probability) of the model's own head (final norm, pooling, head) on x_l.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..adapters.targets import ClassTarget
from ..adapters.timm_vit import BlockRecorder
from ..capture import Capture
from ..classifiers.classifier import Classifier
from ..explanation import minmax
from ..models.clip import Clip
from ..models.towers import run_blocks, vision_embedding
from .common import cosine, token_grid, vision_trunk
from .registry import MethodOutput, register


def block_relevance(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """LeGrad's map of one block [B, N] over every token: (g_h v_h^T)^+ averaged over heads and query rows,
    for the gradient g [B, H, N, d] at the attention output and the values v [B, H, N, d]."""
    return (g.float() @ v.float().transpose(-1, -2)).clamp(min=0).mean(dim=1).mean(dim=1)


def block_feature(clip: Clip, tokens: torch.Tensor) -> torch.Tensor:
    """LeGrad's image feature of one block's output tokens [B, N, D]: ln_post of the mean over every token
    (the class token included), projected, L2-normalised [B, E]."""
    visual = clip.visual
    pooled = visual.ln_post(tokens.mean(dim=1))
    return F.normalize(pooled @ visual.proj if visual.proj is not None else pooled, dim=-1)


@register("legrad", families=["clip_vit"], cost="1 fwd + 1 bwd per explained block", quadratic=2)
def legrad_image(clip: Clip, pixels, targets, index, layer_index: int = -2) -> MethodOutput:
    """LeGrad maps [B, h, w] in [0, 1] over blocks ``layer_index`` .. L-1; the scores are the model's own
    cosine S (LeGrad explains each block's s_l, of which the last block's feature is not the model's)."""
    blocks = clip.vision_blocks
    first = layer_index % len(blocks)
    x = vision_trunk(clip, pixels, index, first)
    outputs = []
    with torch.enable_grad(), Capture(blocks[first:], leaf=True) as cap:
        for block in blocks[first:]:
            x = run_blocks([block], x)
            outputs.append(x)
        score = cosine(vision_embedding(clip.visual, x), targets)
        unit = F.normalize(targets.float(), dim=-1)
        relevance = 0
        for record, tokens in zip(cap.records, outputs):
            s = (block_feature(clip, tokens).float() * unit).sum(-1)
            (grad,) = torch.autograd.grad(s.sum(), record.out, retain_graph=True)
            g = record.split_heads(record.grad_to_o(grad))
            relevance = relevance + block_relevance(g, record.split_heads(record.qkv()[2]))[:, 1:]
    grid = token_grid(clip, pixels)
    return MethodOutput(minmax(relevance.reshape(-1, *grid)).detach(), score.detach())


@register("legrad", families=["timm_vit"], cost="1 fwd + 1 bwd per explained block", quadratic=2)
def legrad_classifier(classifier: Classifier, pixels, targets, index, layer_index: int = -2,
                      probability: bool = False) -> MethodOutput:
    """LeGrad maps [B, h, w] in [0, 1] of a timm ViT classifier's class logit (``probability``: its softmax
    probability), the head applied to each block's output; the scores are the model's own."""
    grid = classifier.check_grid(pixels)
    model = classifier.model
    blocks = model.blocks
    first = layer_index % len(blocks)
    target = ClassTarget(targets, probability)
    with torch.enable_grad(), BlockRecorder(blocks[first:]) as run:
        logits = model(pixels[index])
        relevance = 0
        for tokens, o, v in zip(run.outputs, run.o, run.v):
            s = target(model.forward_head(model.norm(tokens)))
            (grad,) = torch.autograd.grad(s.sum(), o, retain_graph=True)
            heads = v.shape[1]
            g = grad.reshape(*grad.shape[:2], heads, -1).transpose(1, 2)
            relevance = relevance + block_relevance(g, v)[:, model.num_prefix_tokens:]
    return MethodOutput(minmax(relevance.reshape(-1, *grid)).detach(), target(logits).detach())
