"""Class names and prompt templates for an image folder, and the zero-shot classifier built from them
(cached on disk per model, since 1000 classes x 80 templates take minutes to encode)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch

from ..errors import DatasetError
from ..models.clip import Clip
from ..samples import DATA_DIR
from ..synthetic.scenes import TEMPLATES
from ..synthetic.tokenizer import WordTokenizer

WNIDS_FILE = DATA_DIR / "imagenet_wnids.txt"  # the 1000 ImageNet-1k synsets in class-index order
TEMPLATES_FILE = "templates.txt"  # optional, in the folder: one prompt template per line, '{}' = class


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k wnids ('n01440764', ...) in the order of open_clip's class names."""
    return WNIDS_FILE.read_text().split()


@dataclass(frozen=True)
class ClassSet:
    """The classes of a folder: ``folders[i]`` is named ``names[i]`` and prompted with ``templates``."""

    folders: tuple[str, ...]
    names: tuple[str, ...]
    templates: tuple[str, ...]
    imagenet: bool = False

    def index(self, folder: str) -> int:
        return self.folders.index(folder)


def folder_classes(root: str | os.PathLike, clip: Clip | None = None) -> ClassSet:
    """The classes of ``root/<class>/<image>``. Folders named by ImageNet wnids get the 1000 ImageNet
    classes (names and 80 templates from open_clip, labels in ImageNet order, so a subset of the classes
    still uses the 1000-way classifier); other folders become class names ('_' -> space), with the
    templates of ``root/templates.txt``, else the model's own (`default_templates`)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"no folder at {root}: give a folder laid out as DIR/<class>/<image>.")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        loose = [p.name for p in root.iterdir() if p.is_file()][:3]
        hint = f" (found files such as {', '.join(loose)} directly in it)" if loose else ""
        raise DatasetError(
            f"{root} has no class folders{hint}: put each image in a folder named after its class, "
            "DIR/<class>/<image>, e.g. ImageNet val after valprep.sh (DIR/n01440764/*.JPEG)."
        )
    wnids = imagenet_wnids()
    known = set(wnids)
    if all(f in known for f in folders):
        names = tuple(open_clip.IMAGENET_CLASSNAMES)
        templates = tuple(t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES)
        return ClassSet(tuple(wnids), names, templates, imagenet=True)
    if any(f in known for f in folders):
        odd = [f for f in folders if f not in known][:3]
        raise DatasetError(f"{root} mixes ImageNet wnid folders with others ({', '.join(odd)}); keep one kind.")
    names = tuple(f.replace("_", " ") for f in folders)
    custom = root / TEMPLATES_FILE
    if custom.is_file():
        templates = tuple(line.strip() for line in custom.read_text().splitlines() if line.strip())
        if not templates or any("{}" not in t for t in templates):
            raise DatasetError(f"{custom}: every line must be a template with '{{}}' for the class name.")
    else:
        templates = default_templates(clip)
    return ClassSet(tuple(folders), names, templates)


def default_templates(clip: Clip | None) -> tuple[str, ...]:
    """ShapesWorld's caption templates for a model that reads ShapesWorld's words (its word tokenizer); OpenAI's
    80 ImageNet templates otherwise."""
    if clip is not None and isinstance(clip.tokenizer, WordTokenizer):
        return tuple(t.format("a {}") for t in TEMPLATES)
    return tuple(t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES)


def model_fingerprint(clip: Clip) -> str:
    """A short hash that changes with the model's weights (name, tag and the text projection's values)."""
    h = hashlib.sha256(f"{clip.name}:{clip.pretrained}".encode())
    h.update(clip.model.logit_scale.detach().float().cpu().numpy().tobytes())
    proj = clip.text_tower.projection
    weight = proj.weight if isinstance(proj, torch.nn.Linear) else proj
    if weight is not None:
        h.update(weight.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Where zero-shot classifiers are cached: ``path``, else $GRADECLIP_CACHE, else ~/.cache/gradeclip."""
    return Path(path or os.environ.get("GRADECLIP_CACHE") or Path.home() / ".cache" / "gradeclip")


def zero_shot_classifier(clip: Clip, classes: ClassSet, cache: str | os.PathLike | None = None,
                         progress: bool = False) -> torch.Tensor:
    """Unit class embeddings [E, C] (the mean of each class's template embeddings, renormalised, by
    open_clip's `build_zero_shot_classifier`), read from the cache when this model built them before."""
    key = hashlib.sha256("\n".join(classes.names + ("--",) + classes.templates).encode()).hexdigest()[:16]
    file = cache_dir(cache) / f"zeroshot-{clip.name}-{model_fingerprint(clip)}-{key}.pt"
    if file.is_file():
        return torch.load(file, map_location=clip.device).float()
    with torch.no_grad():
        weights = open_clip.build_zero_shot_classifier(
            clip.model, tokenizer=clip.tokenize, classnames=classes.names, templates=classes.templates,
            num_classes_per_batch=10, device=clip.device, use_tqdm=progress,
        ).float()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}")
    torch.save(weights.cpu(), tmp)
    os.replace(tmp, file)  # atomic: a concurrent rank or a kill never leaves half a file
    return weights
