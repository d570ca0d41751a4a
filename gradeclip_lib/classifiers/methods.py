"""Explanation methods for `Classifier`s, behind the image methods' interface with class ids as
targets: ``f(classifier, pixels, targets [B] long, index [B]) -> MethodOutput`` (maps [B, h, w], the
explained logit or probability [B]).

Grad-ECLIP: channel weights w = d(score)/do at the class token, o the last block's attention output
before its projection; values v of the patch tokens; spatial weight per head = min-max over patches of
cos(q_cls, k_i) (q and k after the block's q/k norms, as the attention uses them); map = ReLU(sum_c
w_c v_ic lambda_h(c),i). The same three terms as for CLIP, with a class score for the cosine."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..methods.random_map import hashed_uniform
from ..methods.registry import MethodInfo, MethodOutput, pair_seeds
from ..methods.spatial_weight import minmax, qk_cosine, weighted_values
from .classifier import Classifier

CLASSIFIER_METHODS: dict[str, MethodInfo] = {}


def register(name: str, cost: str = "", pair_seeds: bool = False):
    def wrap(fn):
        CLASSIFIER_METHODS[name] = MethodInfo(name, fn, cost, pair_seeds)
        return fn

    return wrap


def _scores(logits: torch.Tensor, targets: torch.Tensor, probability: bool) -> torch.Tensor:
    chosen = logits.float().softmax(-1) if probability else logits.float()
    return chosen[torch.arange(len(targets), device=targets.device), targets]


def last_block_pass(classifier: Classifier, pixels: torch.Tensor, index: torch.Tensor, leaf: str | None = None):
    """One forward pass of the images of the pairs; returns (logits [B, C], q and k of the last block
    [B, H, N, d] after its q/k norms, v [B, N, D], and the graph leaf: ``leaf="o"`` the attention output
    before the projection [B, N, D], ``"input"`` the last block's input, None nothing)."""
    attn = classifier.model.blocks[-1].attn
    store: dict = {}

    def keep_qkv(module, args, out):
        b, n, _ = out.shape
        store["qkv"] = out.detach().reshape(b, n, 3, attn.num_heads, -1)

    def leaf_o(module, args):
        store["leaf"] = args[0].detach().requires_grad_(True)
        return (store["leaf"],)

    def leaf_input(module, args):
        store["leaf"] = args[0].detach().requires_grad_(True)
        return (store["leaf"], *args[1:])

    handles = [attn.qkv.register_forward_hook(keep_qkv)]
    if leaf == "o":
        handles.append(attn.proj.register_forward_pre_hook(leaf_o))
    elif leaf == "input":
        handles.append(classifier.model.blocks[-1].register_forward_pre_hook(leaf_input))
    try:
        logits = classifier.model(pixels[index])
    finally:
        for h in handles:
            h.remove()
    q, k, v = store["qkv"].unbind(2)
    q, k = attn.q_norm(q.transpose(1, 2)), attn.k_norm(k.transpose(1, 2))  # [B, H, N, d]
    return logits, q, k, v.flatten(2), store.get("leaf")


@register("grad_eclip", cost="1 fwd + 1 bwd (from the last block's attention output)")
def grad_eclip_classifier(classifier: Classifier, pixels, targets, index, probability: bool = False,
                          spatial_weight: bool = True) -> MethodOutput:
    grid = classifier.check_grid(pixels)
    prefix = classifier.model.num_prefix_tokens
    logits, q, k, v, o = last_block_pass(classifier, pixels, index, leaf="o")
    score = _scores(logits, targets, probability)
    (grad,) = torch.autograd.grad(score.sum(), o)
    lam = minmax(qk_cosine(q[:, :, 0].float(), k[:, :, prefix:].float())) if spatial_weight else None
    heads = q.shape[1]
    emap = F.relu(weighted_values(grad[:, 0].float(), v[:, prefix:].float(), lam, heads))
    return MethodOutput(emap.reshape(-1, *grid).detach(), score.detach())


@register("self_attention", cost="1 fwd")
def self_attention_classifier(classifier: Classifier, pixels, targets, index, probability: bool = False
                              ) -> MethodOutput:
    """The class token's attention to the patches in the last block, averaged over heads (text-blind)."""
    grid = classifier.check_grid(pixels)
    prefix = classifier.model.num_prefix_tokens
    with torch.no_grad():
        logits, q, k, _, _ = last_block_pass(classifier, pixels, index)
        probs = (q[:, :, :1] @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).float().softmax(-1)
    return MethodOutput(probs[:, :, 0, prefix:].mean(1).reshape(-1, *grid), _scores(logits, targets, probability))


@register("grad_cam", cost="1 fwd + 1 bwd (from the last block's input)")
def grad_cam_classifier(classifier: Classifier, pixels, targets, index, probability: bool = False
                        ) -> MethodOutput:
    """Grad-CAM on the tokens entering the last block: ReLU(sum_c mean_i(dS/dx_ic) x_ic)."""
    grid = classifier.check_grid(pixels)
    prefix = classifier.model.num_prefix_tokens
    logits, _, _, _, x = last_block_pass(classifier, pixels, index, leaf="input")
    score = _scores(logits, targets, probability)
    (grad,) = torch.autograd.grad(score.sum(), x)
    patches = x[:, prefix:].float().detach()
    weights = grad[:, prefix:].float().mean(1, keepdim=True)
    return MethodOutput(F.relu((weights * patches).sum(-1)).reshape(-1, *grid), score.detach())


@register("random", cost="none", pair_seeds=True)
def random_classifier(classifier: Classifier, pixels, targets, index, seed=0, probability: bool = False
                      ) -> MethodOutput:
    """Uniform maps on the token grid, seeded per pair as CLIP's random map: the chance level of a metric."""
    grid = classifier.check_grid(pixels)
    maps = hashed_uniform(torch.tensor(pair_seeds(seed, len(index)), device=pixels.device), grid)
    with torch.no_grad():
        logits = classifier.model(pixels[index])
    return MethodOutput(maps, _scores(logits, targets, probability))
