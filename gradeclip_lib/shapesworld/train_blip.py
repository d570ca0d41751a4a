"""A small BLIP (Hugging Face ``BlipForImageTextRetrieval``) trained on ShapesWorld with BLIP's own two
retrieval losses, image-text contrast (ITC) and image-text matching (ITM) with hard negatives, so that
its ITC Grad-ECLIP map and its ITM cross-attention map can be scored against true masks offline."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..blip.loading import SHAPES_BLIP_DIR, load_blip
from ..blip.model import Blip, itm_head_logits
from ..images import prepare
from ..metrics import rate_with_interval
from ..synthetic.data import MEAN, STD, SceneTensors, render_scenes
from ..synthetic.scenes import make_scenes
from ..synthetic.tokenizer import vocabulary
from ..training.checkpoint import checkpoint_path, load_checkpoint, remove_checkpoint, save_checkpoint
from ..training.steps import contrastive_loss, lr_at, mixed_precision, normalized_pixels
from .evaluate import PROMPTS

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # BERT's, in the order BertTokenizer expects
ARCHITECTURE = {  # BLIP's layout at ShapesWorld's scale: 64-px scenes in 8-px patches, 4 + 4 layers
    # BLIP's vision config initialises every weight with std 1e-10 (it is only ever loaded): from that
    # start the image features are all equal and nothing trains, so the vision tower takes BERT's 0.02
    "vision_config": {"image_size": 64, "patch_size": 8, "hidden_size": 128, "intermediate_size": 512,
                      "num_hidden_layers": 4, "num_attention_heads": 4, "initializer_range": 0.02},
    "text_config": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
                    "encoder_hidden_size": 128, "max_position_embeddings": 32, "pad_token_id": 0,
                    "bos_token_id": 2, "sep_token_id": 3},
    "image_text_hidden_size": 96,
}


def shapes_tokenizer():
    """A BERT word-piece tokenizer whose vocabulary is BERT's special tokens and ShapesWorld's words."""
    from transformers import BertTokenizer

    words = SPECIAL + vocabulary()
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)


def shapes_blip_model(seed: int = 0):
    """A randomly initialised ``BlipForImageTextRetrieval`` of `ARCHITECTURE` (std 0.02 everywhere)."""
    from transformers import BlipConfig, BlipForImageTextRetrieval

    torch.manual_seed(seed)
    text = {**ARCHITECTURE["text_config"], "vocab_size": len(SPECIAL) + len(vocabulary())}
    config = BlipConfig(vision_config=ARCHITECTURE["vision_config"], text_config=text,
                        image_text_hidden_size=ARCHITECTURE["image_text_hidden_size"])
    return BlipForImageTextRetrieval(config)


def itm_pairs(sim: torch.Tensor, image_sets: torch.Tensor, caption_sets: torch.Tensor,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BLIP's hard negatives: for each image a caption that names an object it does not show, drawn with
    probability softmax(ITC similarity); for each caption likewise an image. Returns (caption index,
    image index) [B]."""
    right = (caption_sets[None, :] & ~image_sets[:, None]) == 0  # [image, caption]: true of it, no negative

    def draw(weights: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
        weights = weights.softmax(1).masked_fill(excluded, 0) + (~excluded) * 1e-6
        weights[weights.sum(1) == 0] = 1.0  # a row with no other set at all (not seen at batch 128)
        return torch.multinomial(weights, 1, generator=gen)[:, 0]

    return draw(sim, right), draw(sim.T, right.T)


def blip_step_loss(model, pixels: torch.Tensor, ids: torch.Tensor, image_sets: torch.Tensor,
                   caption_sets: torch.Tensor, log_scale: torch.Tensor, gen: torch.Generator) -> dict:
    """ITC (multi-positive contrast of ``vision_proj`` and ``text_proj`` class tokens: a caption is right
    for every image that shows all it names) + ITM (match or not, on the pairs of the batch and one hard
    negative each way) for a batch, through the model's own modules."""
    mask = (ids != 0).long()
    image = model.vision_model(pixel_values=pixels).last_hidden_state
    text = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    img, txt = model.vision_proj(image[:, 0]).float(), model.text_proj(text).float()
    scale = log_scale.exp().clamp(max=100)
    itc = contrastive_loss(img, txt, image_sets, caption_sets, scale, positives="subset")
    with torch.no_grad():
        sim = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
        neg_text, neg_image = itm_pairs(sim, image_sets, caption_sets, gen)
    b = len(ids)
    all_ids = torch.cat([ids, ids[neg_text], ids])
    all_images = torch.cat([image, image, image[neg_image]])
    logits = itm_head_logits(model, all_ids, all_images)
    labels = torch.cat([torch.ones(b), torch.zeros(2 * b)]).long()
    itm = F.cross_entropy(logits, labels)
    return {"loss": itc + itm, "itc": itc.detach(), "itm": itm.detach()}


def train_shapes_blip(out: str | Path = SHAPES_BLIP_DIR, steps: int = 8000, batch_size: int = 128,
                      scenes: int = 60_000, partial_captions: float = 0.5, lr: float = 5e-4, seed: int = 0,
                      eval_every: int = 500, eval_scenes: int = 200, workers: int | None = None, progress: bool = True,
                      resume: bool = False, stop_at: int | None = None, data: SceneTensors | None = None
                      ) -> Blip | None:
    """Train the ShapesWorld BLIP on ``scenes`` scenes of 1-3 objects (seed 300 000 + ``seed``; a share
    ``partial_captions`` of the multi-object ones captioned with only some of their objects, as a photo's
    caption names some of what it shows; AdamW, warm-up and cosine decay, bf16 autocast) and save it to
    ``out`` with its history; returns it loaded from there. The training state is checkpointed at every
    evaluation (zero-shot accuracy of both heads on ``eval_scenes`` scenes): ``resume=True`` continues a
    run killed in ``out`` to the same weights as an unbroken one; ``stop_at`` stops after that step as a
    kill would (returns None)."""
    from types import SimpleNamespace

    out = Path(out)
    recipe = {"steps": steps, "batch_size": batch_size, "scenes": scenes, "partial_captions": partial_captions,
              "lr": lr, "seed": seed, "eval_every": eval_every, "eval_scenes": eval_scenes}
    if resume and not checkpoint_path(out).is_file():
        raise FileNotFoundError(f"no training checkpoint in {out}; start the run with `python -m "
                                f"gradeclip_lib shapes train-blip --out {out}` (it writes one at every evaluation)")
    state = load_checkpoint(out) if resume else None
    if state is not None:
        recipe = state["history"]["recipe"]
    torch.manual_seed(recipe["seed"])
    tokenizer = shapes_tokenizer()
    start = time.perf_counter()
    data = data or render_scenes(recipe["scenes"], seed=300_000 + recipe["seed"], n_objects=(1, 3),
                                 size=ARCHITECTURE["vision_config"]["image_size"], workers=workers, progress=progress,
                                 partial_captions=recipe["partial_captions"],
                                 tokenizer=lambda texts: tokenizer(texts, padding=True, return_tensors="pt").input_ids)
    render_seconds = time.perf_counter() - start
    model = shapes_blip_model(recipe["seed"]).train()
    log_scale = torch.nn.Parameter(torch.tensor(1 / 0.07).log())  # the ITC temperature (BLIP's starting 0.07)
    opt = torch.optim.AdamW([*model.parameters(), log_scale], lr=recipe["lr"], weight_decay=0.05)
    schedule = SimpleNamespace(lr=recipe["lr"], warmup=0.05, steps=recipe["steps"])
    gen = torch.Generator().manual_seed(recipe["seed"])
    history: dict = {"step": [], "itc": [], "itm": [], "eval_step": [], "itc_zero_shot": [], "itm_zero_shot": [],
                     "recipe": recipe, "render_seconds": 0.0, "train_seconds": 0.0}
    first = 0
    if state is not None:
        model.load_state_dict(state["model"])
        log_scale.data.copy_(state["log_scale"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        history, first = state["history"], state["step"]
    history["render_seconds"] += render_seconds  # a resumed run renders its scenes again
    device = torch.device("cpu")
    clock = time.perf_counter()
    last = recipe["steps"] if stop_at is None else min(recipe["steps"], stop_at)
    bar = tqdm(range(first, last), desc="training BLIP", disable=not progress, initial=first,
               total=recipe["steps"])
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, schedule)
        batch = torch.randint(len(data), (recipe["batch_size"],), generator=gen)
        with mixed_precision(device, "bf16"):
            losses = blip_step_loss(model, normalized_pixels(data.images[batch], device), data.ids[batch],
                                    data.image_sets[batch], data.caption_sets[batch], log_scale, gen)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        if (step + 1) % 50 == 0:
            history["step"].append(step + 1)
            history["itc"].append(float(losses["itc"]))
            history["itm"].append(float(losses["itm"]))
            bar.set_postfix(itc=f"{float(losses['itc']):.3f}", itm=f"{float(losses['itm']):.3f}")
        if (step + 1) % recipe["eval_every"] == 0 or step + 1 == recipe["steps"]:
            blip = wrap_shapes_blip(model.eval(), tokenizer)
            history["eval_step"].append(step + 1)
            for head in ("itc", "itm"):
                hits = zero_shot_hits(blip, head, n=recipe["eval_scenes"], seed=320_000 + recipe["seed"])
                history[f"{head}_zero_shot"].append(float(hits.float().mean()))
            model.train().requires_grad_(True)
            now = time.perf_counter()
            history["train_seconds"] += now - clock
            clock = now
            save_checkpoint(out, {"step": step + 1, "model": model.state_dict(), "log_scale": log_scale.detach(),
                                  "optimizer": opt.state_dict(), "generator": gen.get_state(), "history": history})
            _write_history(history, out)
    bar.close()
    if last < recipe["steps"]:
        return None
    save_shapes_blip(model.eval(), tokenizer, out)
    blip = load_shapes_blip(out)
    history["itc_accuracy"] = rate_with_interval(zero_shot_hits(blip, "itc"))
    history["itm_accuracy"] = rate_with_interval(zero_shot_hits(blip, "itm"))
    _write_history(history, out)
    remove_checkpoint(out)
    return blip


def _write_history(history: dict, out: Path) -> None:
    """Write ``history.json`` through a temporary file: a kill mid-write leaves the previous one."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "history.tmp"
    tmp.write_text(json.dumps(history, indent=1))
    os.replace(tmp, out / "history.json")


def wrap_shapes_blip(model, tokenizer=None, pretrained: str | None = None) -> Blip:
    """A `Blip` around a ShapesWorld BLIP being trained (ShapesWorld's mean, std and image size)."""
    return Blip(model, tokenizer or shapes_tokenizer(), name="shapes-blip", pretrained=pretrained, mean=MEAN, std=STD,
                image_size=ARCHITECTURE["vision_config"]["image_size"])


def save_shapes_blip(model, tokenizer, out: str | Path) -> None:
    """``save_pretrained`` of the model (fp16 weights, a few MB) and of its processor (tokenizer, image
    size, mean and std), so that ``gl.load_blip('shapes-blip', pretrained=out)`` reads it back."""
    from transformers import BlipImageProcessor, BlipProcessor

    size = ARCHITECTURE["vision_config"]["image_size"]
    images = BlipImageProcessor(size={"height": size, "width": size}, image_mean=list(MEAN), image_std=list(STD))
    BlipProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    model.to(torch.float16).save_pretrained(out)
    model.float()


def load_shapes_blip(folder: str | Path = SHAPES_BLIP_DIR, device: str | torch.device = "cpu") -> Blip:
    """The ShapesWorld BLIP shipped in ``data/shapes-blip`` (or another folder from `train_shapes_blip`)."""
    return load_blip("shapes-blip", pretrained=folder, device=device)


@torch.no_grad()
def zero_shot_hits(blip: Blip, head: str = "itc", n: int = 500, seed: int = 310_000) -> torch.Tensor:
    """Whether ``head`` ("itc": cosine, "itm": match logit) ranks the right one of the 30 'a <colour>
    <shape>' prompts first for ``n`` held-out single-object scenes (bool [n])."""

    size = ARCHITECTURE["vision_config"]["image_size"]
    scenes = make_scenes(n, seed=seed, n_objects=1, size=size)
    truth = torch.tensor([PROMPTS.index(s.objects[0].phrase) for s in scenes])
    pixels, _ = prepare([s.image for s in scenes], blip.patch_size, blip.mean, blip.std)
    image = blip.model.vision_model(pixel_values=torch.stack(pixels).to(blip.device)).last_hidden_state
    ids = blip.tokenize(PROMPTS)
    if head == "itc":
        scores = F.normalize(blip.model.vision_proj(image[:, 0]).float(), dim=-1) @ blip.text_features(ids).T
    elif head == "itm":
        scores = torch.stack([itm_logits(blip, image, ids[p].expand(n, -1)) for p in range(len(PROMPTS))], 1)
    else:
        raise ValueError(f"head must be 'itc' or 'itm', got {head!r}")
    return scores.argmax(1).cpu() == truth


def itm_logits(blip: Blip, image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """ITM "match" logits [B] of image tokens [B, 1+N, D] against token ids [B, L]."""
    return itm_head_logits(blip.model, ids, image, blip.pad_id)[:, 1]
