"""The ImageNet validation labels, read from any of the files people have: the official devkit (its
ground truth in the devkit's own class order, mapped to wnids by its ``meta.mat``), the ``valprep.sh``
script, Kaggle's ``LOC_val_solution.csv``, or a plain list of one wnid per image."""

from __future__ import annotations

import csv
import os
import re
import tarfile
import tempfile
from pathlib import Path

from ..errors import DatasetError
from .classes import imagenet_wnids

DEVKIT_GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
WNID = re.compile(r"n\d{8}")


def val_name(index: int) -> str:
    """The file name of the ``index``-th validation image (1-based), as in the official archive."""
    return f"ILSVRC2012_val_{index:08d}.JPEG"


def read_labels(path: str | os.PathLike) -> dict[str, str]:
    """Image file name -> wnid, from a devkit (``.tar.gz`` or its extracted folder), ``valprep.sh``,
    ``LOC_val_solution.csv`` or a text file with one wnid per line in image order. DatasetError when the
    file is none of these, or names a class outside ImageNet-1k."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"no labels file at {path}: give the devkit (ILSVRC2012_devkit_t12.tar.gz), "
                           "valprep.sh, Kaggle's LOC_val_solution.csv or a file of one wnid per image.")
    if path.is_dir() or path.name.endswith((".tar.gz", ".tgz", ".tar")):
        labels = _devkit(path)
    elif path.suffix == ".sh":
        labels = _valprep(path)
    elif path.suffix == ".csv":
        labels = _kaggle(path)
    else:
        labels = _wnid_list(path)
    if not labels:
        raise DatasetError(f"{path} holds no labels.")
    known = set(imagenet_wnids())
    odd = sorted({w for w in labels.values() if w not in known})
    if odd:
        raise DatasetError(f"{path} names {len(odd)} class(es) outside ImageNet-1k ({', '.join(odd[:3])}): "
                           "is it the ImageNet-1k (ILSVRC 2012) validation set?")
    return labels


def _valprep(path: Path) -> dict[str, str]:
    moves = re.findall(r"^\s*mv\s+(\S+\.JPEG)\s+(n\d{8})/?\s*$", path.read_text(), flags=re.MULTILINE)
    if not moves:
        raise DatasetError(f"{path} has no 'mv ILSVRC2012_val_....JPEG n........../' lines: is it valprep.sh?")
    return {Path(name).name: wnid for name, wnid in moves}


def _kaggle(path: Path) -> dict[str, str]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or [c.strip() for c in rows[0][:2]] != ["ImageId", "PredictionString"]:
        raise DatasetError(f"{path} does not start with 'ImageId,PredictionString': is it Kaggle's "
                           "LOC_val_solution.csv?")
    labels = {}
    for i, row in enumerate(rows[1:], start=2):
        boxes = row[1].split() if len(row) > 1 else []
        if not boxes or not WNID.fullmatch(boxes[0]):
            raise DatasetError(f"{path}, line {i}: expected 'image id,wnid x y x y ...', got {','.join(row)!r}")
        labels[row[0].strip() + ".JPEG"] = boxes[0]  # the first box's class is the image's label
    return labels


def _wnid_list(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if lines and all(line.isdigit() for line in lines):
        raise DatasetError(
            f"{path} holds class numbers in the devkit's own order ({DEVKIT_GROUND_TRUTH}), which only the "
            "devkit's meta.mat maps to wnids: give the whole devkit (ILSVRC2012_devkit_t12.tar.gz) instead.")
    bad = [line for line in lines if not WNID.fullmatch(line)]
    if bad:
        raise DatasetError(f"{path}: expected one wnid (such as n01440764) per line, found {bad[0]!r}.")
    return {val_name(i): wnid for i, wnid in enumerate(lines, start=1)}


def _devkit(path: Path) -> dict[str, str]:
    if path.is_dir():
        return _devkit_folder(path)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with tarfile.open(path) as tar:
                wanted = [m for m in tar.getmembers() if m.name.endswith(("/meta.mat", f"/{DEVKIT_GROUND_TRUTH}"))]
                tar.extractall(tmp, members=wanted, filter="data")
        except tarfile.TarError as err:
            raise DatasetError(f"{path} is not a readable tar archive ({err}): download the devkit again.") from err
        return _devkit_folder(Path(tmp))


def _devkit_folder(root: Path) -> dict[str, str]:
    meta = next(root.rglob("meta.mat"), None)
    truth = next(root.rglob(DEVKIT_GROUND_TRUTH), None)
    if meta is None or truth is None:
        missing = " and ".join(n for n, f in (("data/meta.mat", meta), (DEVKIT_GROUND_TRUTH, truth)) if f is None)
        raise DatasetError(f"{root} is not the ILSVRC 2012 devkit: {missing} not found in it.")
    try:
        import scipy.io
    except ImportError as err:
        raise DatasetError("reading the devkit's meta.mat needs scipy: pip install -r requirements.txt") from err
    synsets = scipy.io.loadmat(meta, squeeze_me=True)["synsets"]
    leaves = synsets[synsets["num_children"] == 0]  # the 1000 classes; the rest are WordNet ancestors
    by_id = {int(i): str(w) for i, w in zip(leaves["ILSVRC2012_ID"], leaves["WNID"])}
    ids = [int(line) for line in truth.read_text().split()]
    unknown = sorted(set(ids) - set(by_id))
    if unknown:
        raise DatasetError(f"{truth} uses class ids that {meta} does not define ({unknown[:3]}).")
    return {val_name(i): by_id[c] for i, c in enumerate(ids, start=1)}
