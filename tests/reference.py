"""Deliberately plain re-computations of the formulas in design.md, written apart from the library
(sequence-first layout as in the authors' code, explicit loops over heads), for the tests to compare."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode, Normalize, Resize, ToTensor

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def keepsize(img: Image.Image, patch: int) -> torch.Tensor:
    w, h = img.size
    nw, nh = int(w / patch + 0.5) * patch, int(h / patch + 0.5) * patch
    img = Resize((nh, nw), interpolation=InterpolationMode.BICUBIC)(img).convert("RGB")
    return Normalize(OPENAI_MEAN, OPENAI_STD)(ToTensor()(img))


def dense_tokens(visual, x: torch.Tensor) -> torch.Tensor:
    """Patch tokens with bicubic-interpolated positions, sequence first [N, B, D], after ln_pre."""
    x = visual.conv1(x)
    feah, feaw = x.shape[-2:]
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1]), x], dim=1)
    pos = visual.positional_embedding
    tok_pos, img_pos = pos[:1], pos[1:]
    side = int(math.isqrt(img_pos.shape[0]))
    img_pos = img_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    img_pos = F.interpolate(img_pos, size=(feah, feaw), mode="bicubic", align_corners=False)
    img_pos = img_pos.reshape(1, img_pos.shape[1], -1).permute(0, 2, 1)
    x = x + torch.cat((tok_pos[None], img_pos), dim=1)
    return visual.ln_pre(x).permute(1, 0, 2), (feah, feaw)


def single_head(q, k, v, mask=None):
    """Sequence-first single-head attention over the full width."""
    scale = q.shape[-1] ** -0.5
    qb, kb, vb = (t.transpose(0, 1) for t in (q, k, v))
    w = torch.bmm(qb * scale, kb.transpose(1, 2))
    if mask is not None:
        w = w + mask
    return torch.bmm(w.softmax(-1), vb).transpose(0, 1)


def grad_eclip_paper_image(model, img: Image.Image, text_emb: torch.Tensor, patch: int) -> tuple:
    """The authors' clip_encode_dense + grad_eclip for one image and one unit text embedding [E]."""
    visual = model.visual
    x, size = dense_tokens(visual, keepsize(img, patch)[None])
    for blk in visual.transformer.resblocks[:-1]:
        x = blk(x.transpose(0, 1)).transpose(0, 1)  # the model's own blocks (batch first)
    x_in = x.detach()
    tr = visual.transformer.resblocks[-1]
    q, k, v = F.linear(tr.ln_1(x_in), tr.attn.in_proj_weight, tr.attn.in_proj_bias).chunk(3, dim=-1)
    o = single_head(q, k, v).detach().requires_grad_(True)
    x = F.linear(o, tr.attn.out_proj.weight, tr.attn.out_proj.bias) + x_in
    x = x + tr.mlp(tr.ln_2(x))
    f = (visual.ln_post(x.permute(1, 0, 2)) @ visual.proj)[:, 0]
    c = (F.normalize(f, dim=-1) @ text_emb)[0]
    grad = torch.autograd.grad(c, o)[0]
    q_out = F.linear(q, tr.attn.out_proj.weight, tr.attn.out_proj.bias)
    k_out = F.linear(k, tr.attn.out_proj.weight, tr.attn.out_proj.bias)
    cos = (F.normalize(q_out[:1, 0], dim=-1) * F.normalize(k_out[1:, 0], dim=-1)).sum(-1)
    cos = (cos - cos.min()) / (cos.max() - cos.min())
    emap = F.relu((grad[:1, 0] * v[1:, 0] * cos[:, None]).sum(-1))
    return emap.reshape(*size).detach(), float(c.detach())


def multi_head(q, k, v, heads: int, mask=None) -> torch.Tensor:
    """Batch-first multi-head attention written head by head: [B, N, D] -> [B, N, D] (before out_proj)."""
    d = q.shape[-1] // heads
    out = []
    for i in range(heads):
        sl = slice(i * d, (i + 1) * d)
        logits = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d)
        out.append((logits if mask is None else logits + mask).softmax(-1) @ v[..., sl])
    return torch.cat(out, -1)


def multi_head_last_block(model, pixels: torch.Tensor):
    """The model's own forward to the image embedding, with the last block's multi-head attention
    written out head by head, returning (f_I, o [B, N, D] requiring grad, q, k, v [B, N, D])."""
    visual = model.visual
    blocks = visual.transformer.resblocks
    x = visual.ln_pre(
        torch.cat([visual.class_embedding.expand(pixels.shape[0], 1, -1),
                   visual.conv1(pixels).flatten(2).transpose(1, 2)], 1) + visual.positional_embedding
    )
    for blk in blocks[:-1]:
        x = blk(x)
    tr = blocks[-1]
    q, k, v = F.linear(tr.ln_1(x), tr.attn.in_proj_weight, tr.attn.in_proj_bias).chunk(3, dim=-1)
    o = multi_head(q, k, v, tr.attn.num_heads).detach().requires_grad_(True)
    y = x + F.linear(o, tr.attn.out_proj.weight, tr.attn.out_proj.bias)
    y = y + tr.mlp(tr.ln_2(y))
    f = visual.ln_post(y)[:, 0] @ visual.proj
    return f, o, q.detach(), k.detach(), v.detach()


def grad_eclip_forward_image(model, pixels: torch.Tensor, text_emb: torch.Tensor, qk: str = "head"):
    """Faithful Grad-ECLIP at the training resolution: maps [B, N_patches] and scores [B]."""
    f, o, q, k, v = multi_head_last_block(model, pixels)
    s = F.cosine_similarity(f, text_emb, dim=-1)
    grad = torch.autograd.grad(s.sum(), o)[0]
    h = model.visual.transformer.resblocks[-1].attn.num_heads
    d = q.shape[-1] // h
    maps = torch.zeros(q.shape[0], q.shape[1] - 1)
    for b in range(q.shape[0]):
        for i in range(h):
            sl = slice(i * d, (i + 1) * d) if qk == "head" else slice(None)
            cos = F.cosine_similarity(q[b, 0, sl][None], k[b, 1:, sl], dim=-1)
            lam = (cos - cos.min()) / (cos.max() - cos.min())
            ch = slice(i * d, (i + 1) * d)
            maps[b] += (grad[b, 0, ch] * v[b, 1:, ch]).sum(-1) * lam
    return F.relu(maps), s.detach()


def grad_eclip_paper_text(model, ids: torch.Tensor, image_emb: torch.Tensor, n: int) -> torch.Tensor:
    """The authors' clip_encode_text_dense + grad_eclip_text for one text [1, 77] -> weights [eos-1]."""
    x = model.token_embedding(ids) + model.positional_embedding
    mask = model.attn_mask
    x = x.permute(1, 0, 2)
    for blk in model.transformer.resblocks[:-n]:
        x = blk(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)
    x_in = x.detach().requires_grad_(True)
    outs, vs, q_outs, k_outs = [], [], [], []
    for tr in model.transformer.resblocks[-n:]:
        q, k, v = F.linear(tr.ln_1(x_in), tr.attn.in_proj_weight, tr.attn.in_proj_bias).chunk(3, dim=-1)
        o = single_head(q, k, v, mask)
        outs.append(o)
        vs.append(v.detach())
        x = F.linear(o, tr.attn.out_proj.weight, tr.attn.out_proj.bias) + x_in
        x = x + tr.mlp(tr.ln_2(x))
        x_in = x
        q_outs.append(F.linear(q, tr.attn.out_proj.weight, tr.attn.out_proj.bias).detach())
        k_outs.append(F.linear(k, tr.attn.out_proj.weight, tr.attn.out_proj.bias).detach())
    x = model.ln_final(x.permute(1, 0, 2))
    eos = int(ids.argmax(-1))
    f = x[0, eos] @ model.text_projection
    c = F.normalize(f, dim=-1) @ image_emb
    maps = []
    for o, v, q_out, k_out in zip(outs, vs, q_outs, k_outs):
        grad = torch.autograd.grad(c, o, retain_graph=True)[0]
        cos = (F.normalize(q_out[eos, 0], dim=-1) * F.normalize(k_out[:, 0], dim=-1)).sum(-1)
        cos = (cos - cos.min()) / (cos.max() - cos.min())
        maps.append((grad[eos, 0] * v[:, 0] * cos[:, None]).sum(-1))
    emap = F.relu(torch.stack(maps).sum(0))[1:eos]
    return emap / emap.sum()


def grad_eclip_forward_text(model, ids: torch.Tensor, image_emb: torch.Tensor, n: int) -> torch.Tensor:
    """Faithful text Grad-ECLIP for one text [1, 77]: the model's multi-head causal blocks written head
    by head, lambda per head min-maxed over the positions the end token sees (0 .. eos)."""
    mask = model.attn_mask
    x = model.token_embedding(ids) + model.positional_embedding
    for blk in model.transformer.resblocks[:-n]:
        x = blk(x, attn_mask=mask)
    x = x.detach().requires_grad_(True)
    eos = int(ids.argmax(-1))
    saved = []
    for tr in model.transformer.resblocks[-n:]:
        h = tr.attn.num_heads
        q, k, v = F.linear(tr.ln_1(x), tr.attn.in_proj_weight, tr.attn.in_proj_bias).chunk(3, dim=-1)
        d = q.shape[-1] // h
        o = multi_head(q, k, v, h, mask)
        saved.append((o, q.detach()[0], k.detach()[0], v.detach()[0], h, d))
        x = x + F.linear(o, tr.attn.out_proj.weight, tr.attn.out_proj.bias)
        x = x + tr.mlp(tr.ln_2(x))
    f = model.ln_final(x)[0, eos] @ model.text_projection
    c = F.normalize(f, dim=-1) @ image_emb
    total = torch.zeros(ids.shape[1])
    for o, q, k, v, h, d in saved:
        grad = torch.autograd.grad(c, o, retain_graph=True)[0][0, eos]
        for i in range(h):
            sl = slice(i * d, (i + 1) * d)
            cos = F.cosine_similarity(q[eos, sl][None], k[: eos + 1, sl], dim=-1)
            lam = (cos - cos.min()) / (cos.max() - cos.min())
            total[: eos + 1] += (grad[sl] * v[: eos + 1, sl]).sum(-1) * lam
    emap = F.relu(total)[1:eos]
    return emap / emap.sum()


# ------------------------------------------------------------------------------------------ baselines
def plain_vision_forward(model, pixels: torch.Tensor):
    """The image tower with every attention written out (and checked against need_weights=True).
    Returns the embedding and, per block, its input, its ln_1 output, its attention weights [B, H, N, N] and
    its output."""
    visual = model.visual
    x = torch.cat([visual.class_embedding.expand(pixels.shape[0], 1, -1),
                   visual.conv1(pixels).flatten(2).transpose(1, 2)], 1) + visual.positional_embedding
    x = visual.ln_pre(x).detach().requires_grad_(True)
    records = []
    for blk in visual.transformer.resblocks:
        x = _explicit_block(blk, x, None, records)
    return visual.ln_post(x)[:, 0] @ visual.proj, records


def _explicit_block(blk, x, mask, records):
    """One block with its attention probabilities as a graph node [B, H, N, N] (so that dS/dA can be
    taken by autograd), checked against nn.MultiheadAttention's own need_weights=True output."""
    h = blk.ln_1(x)
    heads = blk.attn.num_heads
    q, k, v = F.linear(h, blk.attn.in_proj_weight, blk.attn.in_proj_bias).chunk(3, dim=-1)
    split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
    logits = split(q) @ split(k).transpose(-1, -2) / math.sqrt(q.shape[-1] // heads)
    weights = (logits if mask is None else logits + mask).softmax(-1)
    _, materialised = blk.attn(h, h, h, need_weights=True, average_attn_weights=False, attn_mask=mask)
    torch.testing.assert_close(weights, materialised, rtol=1e-4, atol=1e-6)
    o = (weights @ split(v)).transpose(1, 2).reshape(x.shape)
    x_in = x
    x = x + F.linear(o, blk.attn.out_proj.weight, blk.attn.out_proj.bias)
    x = x + blk.mlp(blk.ln_2(x))
    records.append({"input": x_in, "h": h, "weights": weights, "output": x})
    return x


def legrad_reference(model, pixels: torch.Tensor, text_emb: torch.Tensor, layer_index: int = -2) -> torch.Tensor:
    """LeGrad's compute_legrad_clip (legrad-torch 1.1), batch first: per block from ``layer_index``, the
    gradient of cos(ln_post(mean of the block's tokens) proj, t) with respect to the block's materialised
    attention weights, clamped, averaged over heads and query rows, patch columns; summed; min-maxed."""
    visual = model.visual
    _, records = plain_vision_forward(model, pixels)
    start = layer_index % len(records)
    total = 0
    for record in records[start:]:
        feature = F.normalize(visual.ln_post(record["output"].mean(dim=1)) @ visual.proj, dim=-1)
        sim = (feature * F.normalize(text_emb, dim=-1)).sum()
        grad = torch.autograd.grad(sim, record["weights"], retain_graph=True)[0].clamp(min=0)
        total = total + grad.mean(dim=1).mean(dim=1)[:, 1:]
    lo, hi = total.min(dim=1, keepdim=True).values, total.max(dim=1, keepdim=True).values
    return ((total - lo) / (hi - lo)).detach()


def plain_text_forward(model, ids: torch.Tensor):
    """The text tower with materialised causal attention; returns the embedding and per-block records."""
    x = (model.token_embedding(ids) + model.positional_embedding).detach().requires_grad_(True)
    records = []
    for blk in model.transformer.resblocks:
        x = _explicit_block(blk, x, model.attn_mask, records)
    eos = ids.argmax(-1)
    return model.ln_final(x)[torch.arange(len(ids)), eos] @ model.text_projection, records


def abnar_rollout(weights: list[torch.Tensor]) -> torch.Tensor:
    """compute_rollout_attention of the authors' code on head-averaged weights [B, N, N]."""
    eye = torch.eye(weights[0].shape[-1])
    aug = [(w + eye) / (w + eye).sum(-1, keepdim=True) for w in weights]
    joint = aug[0]
    for a in aug[1:]:
        joint = a.bmm(joint)
    return joint


def chefer_relevance(logit: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """Chefer's interpret(): R = I; R += mean_h((grad * cam)^+) R over the given blocks' weights."""
    n = weights[0].shape[-1]
    rel = torch.eye(n).unsqueeze(0).expand(weights[0].shape[0], n, n)
    for w in weights:
        grad = torch.autograd.grad(logit.sum(), [w], retain_graph=True)[0]
        cam = (grad * w).clamp(min=0).mean(dim=1)
        rel = rel + torch.bmm(cam, rel)
    return rel


def mask_clip_reference(model, pixels, text_emb):
    """The authors' value path: v_final = out_proj(v) + x_in; += mlp(ln_2(.)); ln_post; proj; cos per patch."""
    _, records = plain_vision_forward(model, pixels)
    tr, rec = model.visual.transformer.resblocks[-1], records[-1]
    d = rec["h"].shape[-1]
    v = F.linear(rec["h"], tr.attn.in_proj_weight[2 * d:], tr.attn.in_proj_bias[2 * d:])
    v_final = F.linear(v, tr.attn.out_proj.weight, tr.attn.out_proj.bias) + rec["input"]
    v_final = v_final + tr.mlp(tr.ln_2(v_final))
    feats = model.visual.ln_post(v_final) @ model.visual.proj
    return F.cosine_similarity(feats[:, 1:], text_emb[:, None], dim=-1).detach()


def clip_surgery_reference(model, pixels, text_emb, empty_emb, depth):
    """CLIP Surgery's dual-path blocks (v-v attention, no FFN on the new path) and feature surgery
    against the empty string, head by head."""
    _, records = plain_vision_forward(model, pixels)
    blocks = model.visual.transformer.resblocks
    x = records[-depth]["input"]
    for blk, rec in zip(blocks[-depth:], records[-depth:]):
        d, h = rec["h"].shape[-1], blk.attn.num_heads
        v = F.linear(rec["h"], blk.attn.in_proj_weight[2 * d:], blk.attn.in_proj_bias[2 * d:])
        x = x + F.linear(multi_head(v, v, v, h), blk.attn.out_proj.weight, blk.attn.out_proj.bias)
    feats = F.normalize(model.visual.ln_post(x) @ model.visual.proj, dim=-1)
    return (feats[:, 1:] @ (F.normalize(text_emb, dim=-1) - empty_emb).T).detach()


# ---------------------------------------------------------------------------------------------- timm towers
def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[N, D] -> [H, N, d]."""
    return x.reshape(x.shape[0], heads, -1).transpose(0, 1)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    return (x - x.min()) / (x.max() - x.min())


def map_pool(pool, tokens: torch.Tensor, probs: torch.Tensor | None = None):
    """A MAP head written out for one image's tokens [N, D]: its attention probabilities [H, 1, N] (or the
    given ones), values [H, N, d], the probe's query [H, 1, d], keys, the attention output [1, D] and the
    pooled feature [D]."""
    heads = pool.num_heads
    q = _heads(pool.q(pool.latent[0]), heads)  # [H, 1, d]
    kv = pool.kv(tokens)
    k, v = _heads(kv[:, : kv.shape[1] // 2], heads), _heads(kv[:, kv.shape[1] // 2:], heads)
    if probs is None:
        probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
    o = torch.cat(list(probs @ v), dim=-1)  # [1, D] heads side by side
    return probs, v, q, k, o


def map_pool_feature(pool, o: torch.Tensor) -> torch.Tensor:
    x = pool.proj(o)
    return (x + pool.mlp(pool.norm(x)))[0]


def siglip_grad_eclip_reference(clip, pixels: torch.Tensor, text_emb: torch.Tensor):
    """Grad-ECLIP on a SigLIP tower for one image [1, 3, H, W], written out: the probe's attention over the
    trunk's last tokens, channel weights at its output before the projection, per-head min-maxed q-k cosine.
    Returns (map [h, w], cosine, the embedding)."""
    visual = clip.visual
    trunk, pool = visual.trunk, visual.trunk.attn_pool
    assert isinstance(pool.q_norm, torch.nn.Identity) and pool.pos_embed is None
    tokens = trunk.forward_features(pixels)[0]
    probs, v, q, k, o = map_pool(pool, tokens)
    o = o.detach().requires_grad_(True)
    f = visual.head(trunk.head(trunk.fc_norm(map_pool_feature(pool, o))))
    score = F.cosine_similarity(f, text_emb, dim=-1)
    (w,) = torch.autograd.grad(score, o)
    heads, d = v.shape[0], v.shape[-1]
    total = 0
    for h in range(heads):
        lam = _minmax(F.cosine_similarity(q[h], k[h], dim=-1))  # [N]
        total = total + (v[h] @ w[0, h * d:(h + 1) * d]) * lam
    grid = (pixels.shape[-2] // clip.patch_size, pixels.shape[-1] // clip.patch_size)
    return F.relu(total).reshape(grid).detach(), score.detach(), f.detach()


def eva_block_explicit(block, x: torch.Tensor, rope, probs: torch.Tensor | None = None):
    """An EVA-02 block on one image's tokens [N, D] with its attention written out: (output, probabilities
    [H, N, N], q, k, v [H, N, d] after the rotary embedding, o [N, D] before the inner norm)."""
    from timm.layers import apply_rot_embed_cat

    attn = block.attn
    heads = attn.num_heads
    xn = block.norm1(x)
    q, k, v = (_heads(proj(xn), heads) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    npt = attn.num_prefix_tokens
    q = torch.cat([q[:, :npt], apply_rot_embed_cat(q[:, npt:], rope)], dim=1)
    k = torch.cat([k[:, :npt], apply_rot_embed_cat(k[:, npt:], rope)], dim=1)
    if probs is None:
        probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
    o = torch.cat(list(probs @ v), dim=-1)
    return probs, q, k, v, o


def eva_block_rest(block, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    y = x + block.attn.proj(block.attn.norm(o))
    return y + block.mlp(block.norm2(y))


def eva_last_block_input(clip, pixels: torch.Tensor):
    """The last block's input tokens [N, D] and the rotary embedding, from a forward of the whole model."""
    store = {}
    block = clip.visual.trunk.blocks[-1]
    handle = block.register_forward_pre_hook(lambda m, a, kw: store.update(x=a[0], rope=kw["rope"]), with_kwargs=True)
    with torch.no_grad():
        embedding = clip.model.encode_image(pixels)
    handle.remove()
    return store["x"][0], store["rope"], embedding[0]


def eva_embedding_from(clip, tokens: torch.Tensor) -> torch.Tensor:
    trunk = clip.visual.trunk
    return clip.visual.head(trunk.head(trunk.fc_norm(trunk.norm(tokens)[0])))


def eva_grad_eclip_reference(clip, pixels: torch.Tensor, text_emb: torch.Tensor):
    """Grad-ECLIP on an EVA-02 tower for one image, written out (class token row of the last block)."""
    block = clip.visual.trunk.blocks[-1]
    x, rope, model_embedding = eva_last_block_input(clip, pixels)
    probs, q, k, v, o = eva_block_explicit(block, x, rope)
    o = o.detach().requires_grad_(True)
    f = eva_embedding_from(clip, eva_block_rest(block, x, o))
    torch.testing.assert_close(f, model_embedding, rtol=1e-4, atol=1e-5)
    score = F.cosine_similarity(f, text_emb, dim=-1)
    (w,) = torch.autograd.grad(score, o)
    npt = clip.visual.trunk.num_prefix_tokens
    heads, d = v.shape[0], v.shape[-1]
    total = 0
    for h in range(heads):
        lam = _minmax(F.cosine_similarity(q[h, 0], k[h, npt:], dim=-1))
        total = total + (v[h, npt:] @ w[0, h * d:(h + 1) * d]) * lam
    grid = (pixels.shape[-2] // clip.patch_size, pixels.shape[-1] // clip.patch_size)
    return F.relu(total).reshape(grid).detach(), score.detach()


def block_outputs_of(clip, pixels: torch.Tensor) -> list[torch.Tensor]:
    """Every trunk block's output tokens [N, D] for one image, by hooks on a forward of the whole model."""
    outputs = []
    handles = [b.register_forward_hook(lambda m, a, out: outputs.append(out[0])) for b in clip.visual.trunk.blocks]
    with torch.no_grad():
        clip.model.encode_image(pixels)
    for h in handles:
        h.remove()
    return outputs


def siglip_legrad_reference(clip, pixels: torch.Tensor, text_emb: torch.Tensor, layer_index: int = -2,
                            empty_emb: torch.Tensor | None = None) -> torch.Tensor:
    """LeGrad on a SigLIP tower for one image, from design.md: the MAP head on each block's output (no final
    norm), gradients with respect to its materialised attention probabilities, the empty-prompt correction."""
    pool = clip.visual.trunk.attn_pool
    outputs = block_outputs_of(clip, pixels)
    first = layer_index % len(outputs)
    maps, empty = 0, 0
    for tokens in outputs[first:]:
        probs = map_pool(pool, tokens)[0].detach().requires_grad_(True)
        feature = F.normalize(map_pool_feature(pool, map_pool(pool, tokens, probs)[4]), dim=-1)
        for unit, name in ((F.normalize(text_emb, dim=-1), "text"), (empty_emb, "empty")):
            if unit is None:
                continue
            (g,) = torch.autograd.grad(feature @ F.normalize(unit, dim=-1), probs, retain_graph=True)
            m = g.clamp(min=0).mean(0)[0]  # heads, the probe's row
            if name == "text":
                maps = maps + m
            else:
                empty = empty + m
    if empty_emb is not None:
        maps = torch.where(_minmax(empty) > 0.8, torch.zeros_like(maps), maps)
    grid = (pixels.shape[-2] // clip.patch_size, pixels.shape[-1] // clip.patch_size)
    return _minmax(maps).reshape(grid).detach()


def eva_legrad_reference(clip, pixels: torch.Tensor, text_emb: torch.Tensor, layer_index: int = -2) -> torch.Tensor:
    """LeGrad on an EVA-02 tower for one image (our reading, design.md 12): each block's feature from the mean
    of its output tokens through the final norm and heads; gradients with respect to its materialised
    attention probabilities, averaged over heads and rows, at the patches."""
    trunk = clip.visual.trunk
    blocks = trunk.blocks
    first = layer_index % len(blocks)
    store = {}
    handle = blocks[first].register_forward_pre_hook(lambda m, a, kw: store.update(x=a[0][0], rope=kw["rope"]),
                                                     with_kwargs=True)
    with torch.no_grad():
        clip.model.encode_image(pixels)
    handle.remove()
    x, rope = store["x"], store["rope"]
    probs_all, feats = [], []
    for block in blocks[first:]:
        probs = eva_block_explicit(block, x, rope)[0].detach().requires_grad_(True)
        o = eva_block_explicit(block, x, rope, probs)[4]
        x = eva_block_rest(block, x, o)
        probs_all.append(probs)
        feats.append(F.normalize(eva_embedding_from(clip, x.mean(0, keepdim=True)), dim=-1))
    npt = trunk.num_prefix_tokens
    total = 0
    for probs, feature in zip(probs_all, feats):
        (g,) = torch.autograd.grad(feature @ F.normalize(text_emb, dim=-1), probs, retain_graph=True)
        total = total + g.clamp(min=0).mean(0).mean(0)[npt:]
    grid = (pixels.shape[-2] // clip.patch_size, pixels.shape[-1] // clip.patch_size)
    return _minmax(total).reshape(grid).detach()
