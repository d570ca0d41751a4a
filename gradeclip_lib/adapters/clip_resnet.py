"""open_clip CLIP with a ResNet image tower: the attention pool at the end of the tower is the explained
layer. Its one query is the mean token (the readout), its keys and values the cells of the last feature
map; its output before ``c_proj`` is o. The authors' code has no ResNet version, so there is no paper mode."""

from __future__ import annotations

import torch

from ..models.passes import pool_pass
from ..models.resnet_tower import resnet_embedding
from .clip import ClipAdapter
from .protocol import ExplainedLayer


class ResNetClipAdapter(ClipAdapter):
    """A `Clip` whose image tower is open_clip's ModifiedResNet (maps on the stride-32 grid)."""

    family = "clip_resnet"
    description = "CLIP with a ResNet image tower"

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return resnet_embedding(self.model.visual, pixels)

    def explained_layer(self, pixels: torch.Tensor, index: torch.Tensor, mode: str = "forward",
                        grad: bool = True) -> ExplainedLayer:
        mode = self.check_mode(mode)
        run = pool_pass(self.model, pixels, index, grad=grad)
        q, k, v = (t.detach().float() for t in (run.q, run.k, run.v))
        c_proj = self.model.visual.attnpool.c_proj
        return ExplainedLayer(run.split_heads(q), run.split_heads(k), v, readout=0, patches=slice(1, None),
                              grid=run.grid, features=run.embedding, output=run.o,
                              readout_features=lambda o: c_proj(o.to(c_proj.weight.dtype)))
