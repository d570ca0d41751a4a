"""timm VisionTransformer classifiers (`classifiers.Classifier`): the last block's attention at the class
token, q and k after the block's q/k norms (as the attention uses them); the features are the class logits,
so a target is a class logit or probability."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from timm.models.vision_transformer import Block

from ..errors import UnsupportedModelError
from .protocol import Adapter, ExplainedLayer
from .targets import ClassTarget


@dataclass
class BlockPass:
    """One forward of a classifier: logits [B, C], the last block's q and k [B, H, N, d] (after the q/k norms),
    v [B, N, D], its input [B, N, D] and its attention output before ``proj`` [B, N, D] (either one a leaf that
    requires grad when asked for)."""

    logits: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    input: torch.Tensor
    o: torch.Tensor


def last_block_pass(model: torch.nn.Module, pixels: torch.Tensor, leaf: str | None = None) -> BlockPass:
    """The classifier on ``pixels``, recording its last block; ``leaf`` ("o" or "input") starts the graph
    there."""
    block = model.blocks[-1]
    attn = block.attn
    store: dict = {}

    def keep_qkv(_module, _args, out):
        b, n, _ = out.shape
        store["qkv"] = out.detach().reshape(b, n, 3, attn.num_heads, -1)

    def keep(name: str):
        def hook(_module, args):
            if leaf != name:
                store[name] = args[0]
                return None
            store[name] = args[0].detach().requires_grad_(True)
            return (store[name], *args[1:])

        return hook

    handles = [attn.qkv.register_forward_hook(keep_qkv), attn.proj.register_forward_pre_hook(keep("o")),
               block.register_forward_pre_hook(keep("input"))]
    try:
        logits = model(pixels)
    finally:
        for handle in handles:
            handle.remove()
    q, k, v = store["qkv"].unbind(2)
    q, k = attn.q_norm(q.transpose(1, 2)), attn.k_norm(k.transpose(1, 2))  # [B, H, N, d]
    return BlockPass(logits, q, k, v.flatten(2), store["input"], store["o"])


class BlockRecorder:
    """Records, during a classifier's forward, each of ``blocks``' output tokens [B, N, D], attention output
    before its norm and projection o [B, N, D] (a graph node) and values v [B, H, N, d]; the first block's
    input is made a leaf that requires grad, so the graph starts there."""

    def __init__(self, blocks) -> None:
        self.blocks = list(blocks)
        for block in self.blocks:
            if not hasattr(block.attn, "qkv") or not hasattr(block.attn, "norm"):
                raise UnsupportedModelError(f"this method reads timm's standard fused-qkv attention; this model's "
                                            f"blocks use {type(block.attn).__name__}")
        self.outputs: list[torch.Tensor] = []
        self.o: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self._handles: list = []

    def __enter__(self) -> BlockRecorder:
        self.outputs, self.o, self.v = [], [], []

        def leaf(_module, args):
            return (args[0].detach().requires_grad_(True), *args[1:])

        def keep_v(heads: int):
            def hook(_module, _args, out):
                b, n, _ = out.shape
                self.v.append(out.detach().reshape(b, n, 3, heads, -1)[:, :, 2].transpose(1, 2))

            return hook

        self._handles.append(self.blocks[0].register_forward_pre_hook(leaf))
        for block in self.blocks:
            self._handles += [block.attn.qkv.register_forward_hook(keep_v(block.attn.num_heads)),
                              block.attn.norm.register_forward_pre_hook(lambda _m, args: self.o.append(args[0])),
                              block.register_forward_hook(lambda _m, _args, out: self.outputs.append(out))]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def class_row_readout(model: torch.nn.Module, x_in: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The logits [B, C] as a function of the class token's attention output before ``proj`` [B, D], the rest
    held: the last block's residual and MLP on the class row, the final norm and the head."""
    block = model.blocks[-1]
    if type(block) is not Block:
        raise UnsupportedModelError(f"the Jacobian route follows timm's standard Block; this model's last block "
                                    f"is {type(block).__name__}. Explain its images one backward pass at a time.")

    def logits(o_cls: torch.Tensor) -> torch.Tensor:
        y = x_in[:, 0] + block.ls1(block.attn.proj(o_cls))
        y = y + block.ls2(block.mlp(block.norm2(y)))
        return model.head(model.fc_norm(model.norm(y)))

    return logits


class TimmViTAdapter(Adapter):
    """A supervised ViT classifier with a class token (``global_pool="token"``)."""

    family = "timm_vit"
    description = "timm ViT classifier"

    def grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        return self.model.check_grid(pixels)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        self.grid(pixels)
        with torch.no_grad():
            return self.model.model(pixels)

    def encode_targets(self, targets: int | str | Sequence[int | str] | torch.Tensor) -> torch.Tensor:
        return self.model.class_index(targets)

    def target(self, targets: torch.Tensor, probability: bool = False) -> ClassTarget:
        return ClassTarget(targets, probability)

    def explained_layer(self, pixels: torch.Tensor, index: torch.Tensor, mode: str = "forward",
                        grad: bool = True) -> ExplainedLayer:
        mode = self.check_mode(mode)
        grid = self.grid(pixels)
        model = self.model.model
        with torch.set_grad_enabled(grad):
            run = last_block_pass(model, pixels[index], leaf="o" if grad else None)
        return ExplainedLayer(run.q.float(), run.k.float(), run.v.float(), readout=0,
                              patches=slice(model.num_prefix_tokens, None), grid=grid, features=run.logits,
                              output=run.o, readout_features=class_row_readout(model, run.input.detach()))
