"""The fine-tuning run on ShapesWorld, with its controls and its before/after measurements.

Starting from the shipped model, the same steps on the same scenes are run five times: regions from
Grad-ECLIP maps of the frozen base model (the method), the global contrastive loss only (does the local
loss add anything?), regions from the true masks (upper bound), uniform regions (lower bound), and regions
from the frozen model's raw attention (a saliency blind to the phrase: do the maps help by reading the
text, or would any saliency do?).
`python -m gradeclip_lib shapes finetune` repeats it; finished runs are kept in the results file."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..explain import explain
from ..metrics import rate_with_interval
from ..models.clip import Clip
from ..models.shapes import DATA_DIR, SHAPES_DIR, TUNED_DIR, load_shapes_clip, save
from ..shapesworld.evaluate import PROMPTS, binding_hits, image_size, localisation, zero_shot_hits
from ..synthetic.data import object_bits
from ..synthetic.scenes import make_scenes
from ..training.steps import contrastive_loss, lr_at, mixed_precision, normalized_pixels
from .dense import encode_with_dense
from .loss import region_phrase_loss
from .regions import REGION_SOURCES, map_weights, mask_weights, pool_regions, uniform_weights

RESULTS_FILE = DATA_DIR / "results" / "finetune.json"
RUNS = ("grad_eclip", "none", "masks", "uniform", "attention")  # "none": the global loss only


@dataclass(frozen=True)
class FinetuneConfig:
    regions: str = "grad_eclip"  # where region weights come from, or "none" for the global loss only
    steps: int = 300
    batch_size: int = 64
    scenes: int = 3000
    n_objects: tuple[int, int] = (1, 3)
    lr: float = 5e-5
    warmup: float = 0.1
    weight_decay: float = 0.05
    local_weight: float = 1.0
    seed: int = 0
    precision: str = "bf16"

    def __post_init__(self) -> None:
        if self.regions not in (*REGION_SOURCES, "none"):
            raise ValueError(f"regions must be one of {(*REGION_SOURCES, 'none')}, got {self.regions!r}")


@dataclass
class FinetuneData:
    """The fine-tuning scenes as tensors, with one row per object: its scene, its phrase (index into
    `PROMPTS`) and its region weights over the patch grid for every source."""
    images: torch.Tensor  # uint8 [S, 3, H, W]
    ids: torch.Tensor  # caption tokens [S, L]
    sets: torch.Tensor  # objects of each scene as a bit mask [S] (the caption names them all)
    first: torch.Tensor  # index of each scene's first object [S]
    count: torch.Tensor  # objects per scene [S]
    label: torch.Tensor  # phrase of each object [O]
    weights: dict[str, torch.Tensor]  # source -> [O, N]


def build_data(base: Clip, scenes: int, seed: int, n_objects: tuple[int, int] = (1, 3)) -> FinetuneData:
    """Scenes of the fine-tuning seed (100 000 + seed: none of them seen in training or measured in the
    book) with region weights from the frozen ``base`` model's Grad-ECLIP maps and raw attention (the last
    block's class-token row, the same for every object of a scene), the masks, and uniform."""
    drawn = make_scenes(scenes, seed=100_000 + seed, n_objects=n_objects, size=image_size(base))
    objects = [o for s in drawn for o in s.objects]
    maps = explain(base, [s.image for s in drawn for _ in s.objects], [o.phrase for o in objects], batch_size=256)
    count = torch.tensor([len(s.objects) for s in drawn])
    # text-blind: one map per scene, repeated for each of its objects
    attention = explain(base, [s.image for s in drawn], [s.objects[0].phrase for s in drawn],
                        method="self_attention", batch_size=256).maps.repeat_interleave(count, dim=0)
    patches = maps.maps[0].numel()
    return FinetuneData(
        images=torch.stack([torch.from_numpy(np.array(s.image)).permute(2, 0, 1) for s in drawn]),
        ids=base.tokenize([s.caption for s in drawn]).cpu(),
        sets=torch.tensor([object_bits(s.objects) for s in drawn]),
        first=torch.cumsum(count, 0) - count, count=count,
        label=torch.tensor([PROMPTS.index(o.phrase) for o in objects]),
        weights={"grad_eclip": map_weights(maps.maps.detach()), "attention": map_weights(attention.detach()),
                 "masks": mask_weights(torch.stack([torch.from_numpy(o.mask) for o in objects]), base.patch_size),
                 "uniform": uniform_weights(len(objects), patches)},
    )


def finetune(base: Clip, cfg: FinetuneConfig, data: FinetuneData, progress: bool = True) -> tuple[Clip, dict]:
    """Fine-tune a copy of ``base`` (left unchanged); returns the tuned model and its loss history."""
    torch.manual_seed(cfg.seed)
    model = copy.deepcopy(base.model).float().train().requires_grad_(True)
    device = next(model.parameters()).device
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    prompt_ids = base.tokenize(PROMPTS)
    gen = torch.Generator().manual_seed(cfg.seed)  # the same batches for every source
    history: dict = {"step": [], "global": [], "local": [], "config": asdict(cfg)}
    start = time.perf_counter()
    for step in tqdm(range(cfg.steps), desc=f"fine-tuning ({cfg.regions})", disable=not progress):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = torch.randint(len(data.images), (cfg.batch_size,), generator=gen)
        scale = model.logit_scale.exp().clamp(max=100)
        with mixed_precision(device, cfg.precision):
            img, dense = encode_with_dense(model.visual, normalized_pixels(data.images[batch], device))
            txt = model.encode_text(data.ids[batch].to(device))
            sets = data.sets[batch].to(device)
            loss_global = contrastive_loss(img.float(), txt.float(), sets, sets, scale, "same")
            loss_local = torch.zeros((), device=device)
            if cfg.regions != "none":
                position = torch.repeat_interleave(torch.arange(len(batch)), data.count[batch])
                rows = data.first[batch][position] + _within(data.count[batch])
                phrases, labels = torch.unique(data.label[rows], return_inverse=True)
                regions = pool_regions(dense.float(), data.weights[cfg.regions][rows].to(device), position.to(device))
                phrase_emb = model.encode_text(prompt_ids[phrases.to(prompt_ids.device)])
                loss_local = region_phrase_loss(regions, phrase_emb.float(), labels.to(device), scale)
            loss = loss_global + cfg.local_weight * loss_local
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 10 == 0 or step + 1 == cfg.steps:
            history["step"].append(step + 1)
            history["global"].append(float(loss_global.detach()))
            history["local"].append(float(loss_local.detach()))
    history["seconds"] = time.perf_counter() - start
    tuned = Clip(model.eval().requires_grad_(False), base.tokenizer, preprocess_cfg=asdict(base.preprocess_cfg),
                 name=base.name, pretrained=f"fine-tuned ({cfg.regions})")
    return tuned, history


def _within(count: torch.Tensor) -> torch.Tensor:
    """0, 1, .., c-1 for each count c, concatenated: the object's place within its scene."""
    starts = torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    return torch.arange(int(count.sum())) - starts


@torch.no_grad()
def region_hits(clip: Clip, n: int = 300, seed: int = 120_000, n_objects: int = 3) -> torch.Tensor:
    """30-way region classification from dense features: each object's mask-pooled dense feature against
    the 30 phrase embeddings; bool [n * n_objects] (chance 1/30)."""
    scenes = make_scenes(n, seed=seed, n_objects=n_objects, size=image_size(clip))
    objects = [o for s in scenes for o in s.objects]
    _, dense = encode_with_dense(clip.visual, clip.crop([s.image for s in scenes]))
    position = torch.repeat_interleave(torch.arange(n), n_objects)
    weights = mask_weights(torch.stack([torch.from_numpy(o.mask) for o in objects]), clip.patch_size)
    regions = pool_regions(dense.float(), weights.to(dense.device), position.to(dense.device))
    text = clip.encode_text(PROMPTS)
    truth = torch.tensor([PROMPTS.index(o.phrase) for o in objects])
    return (regions @ text.T).argmax(1).cpu() == truth


def tuned_checks(clip: Clip, n: int = 500) -> dict[str, tuple[float, float, float]]:
    """Before/after measurements on held-out scenes, each (rate, low, high) with a Wilson 95 % interval:
    region classification, pointing game of Grad-ECLIP and of the dense features (MaskCLIP's map) on
    four-object scenes, binding, zero-shot accuracy."""
    def pointing(method: str) -> tuple[float, float, float]:
        return rate_with_interval(localisation(clip, method, n=n, scene_seed=121_000)["pointing"])

    return {
        "region": rate_with_interval(region_hits(clip, n)),
        "pointing_grad_eclip": pointing("grad_eclip"),
        "pointing_dense": pointing("mask_clip"),
        "binding": rate_with_interval(binding_hits(clip, n, seed=122_000)),
        "zero_shot": rate_with_interval(zero_shot_hits(clip, n, seed=123_000)[1]),
    }


def run_finetune(cfg: FinetuneConfig = FinetuneConfig(), runs: tuple[str, ...] = RUNS,
                 base_folder: str | Path = SHAPES_DIR, results: str | Path = RESULTS_FILE,
                 tuned_dir: str | Path | None = TUNED_DIR, n_eval: int = 500, progress: bool = True) -> dict:
    """The method and its controls on the model in ``base_folder``, measured before and after. Each
    finished run is written to ``results`` at once and skipped when the same command runs again with the
    same recipe; the model tuned with Grad-ECLIP regions is saved to ``tuned_dir``."""
    base = load_shapes_clip(base_folder)
    results = Path(results)
    recipe = json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k != "regions"}))
    record = json.loads(results.read_text()) if results.is_file() else {}
    if record.get("recipe") != recipe or record.get("base") != str(base_folder):
        record = {"recipe": recipe, "base": str(base_folder), "runs": {}}
    if "before" not in record:
        record["before"] = tuned_checks(base, n_eval)
        _write(record, results)
    data = None
    for source in runs:
        saved = tuned_dir is None or source != "grad_eclip" or (Path(tuned_dir) / "model.safetensors").is_file()
        if source in record["runs"] and saved:
            continue
        data = data or build_data(base, cfg.scenes, cfg.seed, cfg.n_objects)
        tuned, history = finetune(base, FinetuneConfig(**{**asdict(cfg), "regions": source}), data, progress)
        if source == "grad_eclip" and tuned_dir is not None:  # measured as saved (fp16), as a reader loads it
            save(tuned.model, json.loads((Path(base_folder) / "config.json").read_text()), tuned_dir)
            (Path(tuned_dir) / "history.json").write_text(json.dumps(history, indent=1))
            tuned = load_shapes_clip(tuned_dir)
        record["runs"][source] = {"checks": tuned_checks(tuned, n_eval), "history": history}
        _write(record, results)
    return json.loads(json.dumps(record))  # as read back from the file: the same form on every call


def _write(record: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)
