"""`evaluate_folder`: the deletion / insertion protocol over an image folder, written record by record,
resumable, shardable across GPUs under torchrun; `summary` turns a results file into an AUC table."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..adapters import MODES, OLD_MODE_NAMES, canonical_mode
from ..hardware import device_name
from ..memo import memoized
from ..methods import IMAGE_METHODS
from ..metrics import mean_with_interval
from ..models.clip import Clip
from .causal import causal_auc, causal_curves
from .classes import folder_classes, zero_shot_classifier
from .curves import auc, insertion_efficiency, median_share
from .data import ImageFolderData, Item, Sample, Skipped, list_images, loader
from .protocol import TARGETS, Batch, ZeroShot, clean_logits, deletion_insertion, explain_targets
from .records import RecordWriter, finished, merge, rank_file, read_records

CURVES = ("deletion_prob", "insertion_prob", "deletion_top1", "insertion_top1", "deletion_top5", "insertion_top5")


@dataclass(frozen=True)
class MethodSpec:
    """A method and its options, written ``name``, ``name:key=value;key=value`` (numbers are parsed),
    or ``grad_eclip:paper`` as a short form of ``grad_eclip:mode=paper`` (``grad_eclip:forward`` likewise;
    ``faithful``, the older name of ``forward``, still works). The label names the records."""

    label: str
    name: str
    options: dict = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, spec: str) -> MethodSpec:
        name, _, rest = spec.partition(":")
        if name not in IMAGE_METHODS:
            raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(IMAGE_METHODS))}")
        options: dict = {}
        for part in filter(None, rest.split(";")):
            key, eq, value = part.partition("=")
            if not eq:
                if name != "grad_eclip" or key.strip() not in (*MODES, *OLD_MODE_NAMES):
                    raise ValueError(f"{spec!r}: write options as key=value (or grad_eclip:paper)")
                key, value = "mode", key
            options[key.strip()] = _number(value.strip())
        if name == "grad_eclip" and "mode" in options:
            options["mode"] = canonical_mode(options["mode"])
        return cls(spec, name, options)


def parse_jobs(methods: Sequence[str], targets: Sequence[str]) -> list[tuple[MethodSpec, str]]:
    """Every (method, target) pair to run; raises ValueError for an unknown method, option or target."""
    specs = [MethodSpec.parse(m) for m in methods]
    for t in targets:
        if t not in TARGETS:
            raise ValueError(f"unknown target {t!r}; use 'gt' (the label) and/or 'pred' (the prediction)")
    return [(s, t) for s in specs for t in targets]


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def interleaved(items: Sequence[Item]) -> list[Item]:
    """Items reordered round-robin over classes (1st image of every class, then 2nd, ...), so that
    ``--limit N`` gives a sample spread over the classes."""
    seen: dict[int, int] = defaultdict(int)
    position = []
    for item in items:
        position.append(seen[item.label])
        seen[item.label] += 1
    return [item for _, _, item in sorted(zip(position, range(len(items)), items), key=lambda t: t[:2])]


def distributed_context() -> tuple[int, int]:
    """(rank, world size) under torchrun, (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _barrier(world: int) -> None:
    if world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _round(values: torch.Tensor, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in values]


# images per second even below one (tqdm's default would turn it into seconds per image for large photos)
IMAGES_PER_SECOND = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]"


def evaluate_folder(
    clip: Clip,
    data: str | os.PathLike,
    methods: Sequence[str],
    out: str | os.PathLike,
    targets: Sequence[str] = ("gt",),
    limit: int | None = None,
    batch_size: int | None = None,
    score_batch: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    causal: bool = False,
    cache: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> Path:
    """Run deletion and insertion for every image of ``data`` x method x target and append the records
    to ``out`` (JSON lines). Records already in ``out`` are kept and not recomputed. Returns ``out``.

    ``batch_size`` images are read and explained together: 128 on a GPU, 16 on a CPU by default.
    ``score_batch`` perturbed images go through the model at once: 256 on a GPU, 8 on a CPU by default
    (large batches run slower on a CPU, whose caches they overflow). ``workers`` processes decode the
    images: up to 8 on a GPU, none on a CPU by default (there they would take cores from the model)."""
    jobs = parse_jobs(methods, targets)
    specs = list(dict.fromkeys(s for s, _ in jobs))
    started = time.time()
    rank, world = distributed_context()
    classes = folder_classes(data, clip)
    items = interleaved(list_images(data, classes))[:limit]
    show = bool(progress) or (progress is None and sys.stderr.isatty())
    if rank == 0:  # rank 0 builds the classifier (or reads it from the cache); the others read it after
        weights = zero_shot_classifier(clip, classes, cache, progress=show)
    _barrier(world)
    if rank != 0:
        weights = zero_shot_classifier(clip, classes, cache)
    zs = ZeroShot(clip, weights, score_batch or (256 if clip.device.type == "cuda" else 8))

    out = Path(out)
    done = finished(out)
    todo = [it for it in items if any((it.key, s.label, t) not in done for s, t in jobs)]
    pending = todo[rank::world]
    target_file = rank_file(out, rank) if world > 1 else out
    dataset = ImageFolderData(data, pending, seed=seed, min_side=clip.patch_size)
    gpu = clip.device.type == "cuda"
    if workers is None:
        workers = min(8, (os.cpu_count() or 2) - 1) if gpu else 0
    batch_size = batch_size or (128 if gpu else 16)
    bar = tqdm(total=len(pending), desc=f"evaluate (rank {rank})" if world > 1 else "evaluate",
               unit="img", disable=not show, bar_format=IMAGES_PER_SECOND)
    skipped = 0
    with RecordWriter(target_file) as writer:
        for samples in loader(dataset, batch_size, workers, pin_memory=gpu):
            good = [s for s in samples if isinstance(s, Sample)]
            for s in samples:
                if isinstance(s, Skipped):
                    skipped += 1
                    bar.write(f"skipped {s.key}: {s.reason}", file=sys.stderr)
            if good:
                writer.write(_evaluate_batch(zs, good, classes.names, jobs, done, causal))
            bar.update(len(samples))
    bar.close()
    if skipped:
        print(f"{skipped} unreadable image(s) skipped (listed above); fix or remove them and re-run.",
              file=sys.stderr)
    _barrier(world)
    if rank == 0:
        total = merge(out)
        write_meta(out, clip, data, specs, targets, images=len(todo), seconds=time.time() - started,
                   records=total, world=world)
    _barrier(world)
    return out


def meta_file(out: str | os.PathLike) -> Path:
    """The sidecar that says which model, machine and data produced a results file."""
    out = Path(out)
    return out.with_name(out.stem + ".meta.json")


def write_meta(out: Path, clip: Clip, data, specs, targets, images: int, seconds: float, records: int,
               world: int) -> None:
    info = {
        "model": clip.name, "pretrained": clip.pretrained, "dtype": str(clip.dtype).replace("torch.", ""),
        "device": device_name(str(clip.device)), "processes": world, "torch": torch.__version__,
        "data": str(Path(data).resolve()), "methods": [s.label for s in specs], "targets": list(targets),
        "records": records, "last_run": {"images": images, "seconds": round(seconds, 1),
                                         "finished": time.strftime("%Y-%m-%d %H:%M:%S")},
    }
    meta_file(out).write_text(json.dumps(info, indent=1))


def _evaluate_batch(zs: ZeroShot, samples: list[Sample], names: Sequence[str], jobs, done, causal: bool) -> list[dict]:
    """The records of ``samples`` not yet in ``done``, for every (method, target) job."""
    keys = {s.key for s in samples}
    return _batch_records(zs, zs.clip, zs.weights, samples, list(names), jobs, {d for d in done if d[0] in keys},
                          causal)


@memoized(ignore=("zs",))  # zs is keyed by its model and weights
def _batch_records(zs: ZeroShot, clip: Clip, weights: torch.Tensor, samples: list[Sample], names: list[str], jobs,
                   done: set, causal: bool) -> list[dict]:
    batch = Batch.build([s.pixels for s in samples], [s.noise for s in samples], [s.label for s in samples],
                        clip.device, keys=[s.key for s in samples])
    clean = clean_logits(zs, batch)
    pred = clean.argmax(1)
    records = []
    for spec in dict.fromkeys(spec for spec, _ in jobs):
        pending: dict[tuple[int, ...], list[str]] = {}  # the images still to do -> the targets that need them
        for target in (t for s, t in jobs if s == spec):
            todo = tuple(i for i, s in enumerate(samples) if (s.key, spec.label, target) not in done)
            if todo:
                pending.setdefault(todo, []).append(target)
        for todo, targets in pending.items():  # usually one group: every target of the same images
            sub = batch.subset(list(todo))
            classes = {t: (sub.labels if t == "gt" else pred[list(todo)]).clone() for t in targets}
            maps = explain_targets(clip, sub, [zs.weights[:, classes[t]].T for t in targets], spec.name,
                                   **spec.options)
            for target, target_maps in zip(targets, maps):
                curves = deletion_insertion(zs, sub, target_maps, classes[target], clean[list(todo)])
                if causal:
                    curves.update(causal_curves(zs, sub, target_maps, classes[target]))
                for row, i in enumerate(todo):
                    record = {"image": samples[i].key, "label": samples[i].label, "class": names[samples[i].label],
                              "method": spec.label, "target": target, "target_class": int(classes[target][row]),
                              "pred": int(pred[i])}
                    record.update({name: _round(values[row]) for name, values in curves.items()})
                    record["insertion_eff"] = _efficiency(record)
                    records.append(record)
    return records


def _efficiency(record: dict) -> float | None:
    """The record's insertion efficiency (see `insertion_efficiency`); None if not reached by 50 %."""
    share = float(insertion_efficiency(record["insertion_prob"], record["deletion_prob"][0]))
    return None if share != share else round(share, 6)


def summary(records: Sequence[dict] | str | os.PathLike) -> list[dict]:
    """Mean AUC per method and target: deletion (lower is better) and insertion (higher is better) of
    top-1 accuracy and class probability over 0-50 % of the pixels, and RISE's AUCs if measured; each
    with its standard error over images (``..._auc_se``). Also the insertion efficiency: the median
    share of pixels that gives back 90 % of the full image's probability (``insertion_eff_median``,
    ``inf`` if most images never get there by 50 %) and the share of images that get there by 50 %
    (``insertion_eff_reached``)."""
    if not isinstance(records, Sequence):
        records = list(read_records(records))
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        groups[r["method"], r["target"]].append(r)
    rows = []
    for (method, target), rs in groups.items():
        row = {"method": method, "target": target, "images": len(rs)}
        areas = {name: auc(torch.tensor([r[name] for r in rs])) for name in CURVES}
        for name in ("causal_deletion", "causal_insertion"):
            if all(name in r for r in rs):
                areas[name] = causal_auc(torch.tensor([r[name] for r in rs]))
        for name, per_image in areas.items():
            row[f"{name}_auc"] = float(per_image.mean())
            row[f"{name}_auc_se"] = float(per_image.std() / len(rs) ** 0.5) if len(rs) > 1 else float("nan")
        full = torch.tensor([r["deletion_prob"][0] for r in rs])
        shares = insertion_efficiency(torch.tensor([r["insertion_prob"] for r in rs]), full)
        row["insertion_eff_median"] = median_share(shares)
        row["insertion_eff_reached"] = float((~shares.isnan()).double().mean())
        rows.append(row)
    return rows


def differ(a: dict, b: dict, key: str, z: float = 2.0) -> bool:
    """Whether two `summary` rows' areas ``key`` (e.g. 'deletion_prob_auc') differ by more than ``z``
    combined standard errors, sqrt(se_a^2 + se_b^2): a simple rule that ignores the pairing of images
    (so it is conservative when methods are scored on the same images)."""
    gap = abs(a[key] - b[key])
    return gap > z * (a[f"{key}_se"] ** 2 + b[f"{key}_se"] ** 2) ** 0.5


def tiers(rows: Sequence[dict], key: str, lower_is_better: bool, z: float = 2.0) -> list[list[str]]:
    """Methods in order of ``key``, grouped: each group holds the methods that do not `differ` from the
    best method of the group, so methods in one group cannot be told apart by this run."""
    ordered = sorted(rows, key=lambda r: r[key], reverse=not lower_is_better)
    groups: list[list[dict]] = []
    for row in ordered:
        if groups and not differ(groups[-1][0], row, key, z):
            groups[-1].append(row)
        else:
            groups.append([row])
    return [[r["method"] for r in g] for g in groups]


def beats_floor(records: Sequence[dict], floor: str = "random", metric: str = "prob") -> list[dict]:
    """Per method, the share of images whose deletion area is below the ``floor`` method's on the same
    image, and whose insertion area is above it (paired, image by image)."""
    by: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in records:
        by[r["method"]][r["image"]] = r
    base = by[floor]
    rows = []
    for method, recs in by.items():
        if method == floor:
            continue
        images = sorted(set(recs) & set(base))
        share = {}
        for mode in ("deletion", "insertion"):
            mine = auc(torch.tensor([recs[i][f"{mode}_{metric}"] for i in images]))
            theirs = auc(torch.tensor([base[i][f"{mode}_{metric}"] for i in images]))
            better = mine < theirs if mode == "deletion" else mine > theirs
            share[mode] = float(better.double().mean())
        rows.append({"method": method, "images": len(images), "deletion": share["deletion"],
                     "insertion": share["insertion"]})
    return sorted(rows, key=lambda r: -r["deletion"])


def format_summary(rows: Sequence[dict]) -> str:
    """The summary as a plain-text table (AUCs over x in [0, 0.5] for the authors' protocol)."""
    cols = [("method", "method"), ("target", "target"), ("images", "images"),
            ("deletion_top1_auc", "del top1 ↓"), ("insertion_top1_auc", "ins top1 ↑"),
            ("deletion_prob_auc", "del prob ↓"), ("insertion_prob_auc", "ins prob ↑"),
            ("insertion_eff_median", "ins 90% ↓"), ("insertion_eff_reached", "reached")]
    if any("causal_deletion_auc" in r for r in rows):
        cols += [("causal_deletion_auc", "RISE del ↓"), ("causal_insertion_auc", "RISE ins ↑")]
    cells = [[h for _, h in cols]] + [[_cell(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(row[j]) for row in cells) for j in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _cell(value) -> str:
    if value is None:
        return ""
    if value == float("inf"):
        return "> 0.5"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def paired_area_gap(records: Sequence[dict], a: str, b: str, curve: str) -> tuple[float, float, float]:
    """Method ``a``'s area minus method ``b``'s on ``curve`` (``"deletion_prob"``, ``"insertion_top1"``, or
    the RISE metric's ``"causal_deletion"``...), image by image over the images both scored: the mean
    difference and its 95 % bootstrap interval. Pairing the images separates methods that `tiers`, which
    ignores it, cannot."""
    area = causal_auc if curve.startswith("causal") else auc
    by: dict[str, dict[str, Sequence[float]]] = {a: {}, b: {}}
    for r in records:
        if r["method"] in by:
            by[r["method"]][r["image"]] = r[curve]
    images = sorted(set(by[a]) & set(by[b]))
    if not images:
        raise ValueError(f"no image was scored by both {a!r} and {b!r}")
    gap = (area(torch.tensor([by[a][i] for i in images])) - area(torch.tensor([by[b][i] for i in images])))
    return mean_with_interval(gap.numpy())
