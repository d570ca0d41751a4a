"""``prepare-imagenet``: the validation images (the official tar, or a folder such as Kaggle's
``ILSVRC/Data/CLS-LOC/val``) sorted into the ``DIR/<wnid>/<image>`` folders `evaluate` reads, as the
seed's ``valprep.sh`` did, without downloading anything.

Each image is written to ``<name>.part`` and renamed when complete, so a stop at any point leaves only
whole images (a stale ``.part`` is removed on the next run); a rerun skips the images already in place.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from ..errors import DatasetError
from .imagenet_labels import read_labels

DONE_FILE = ".prepared.json"


@dataclass
class PrepareReport:
    """What a run did: images written now, found already in place, and files of the source without label."""

    written: int = 0
    present: int = 0
    unlabelled: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.written + self.present


def prepare_imagenet(source: str | os.PathLike, labels: str | os.PathLike, out: str | os.PathLike,
                     move: bool = False, progress: bool | None = None) -> PrepareReport:
    """Sort the validation images of ``source`` (the official ``ILSVRC2012_img_val.tar`` or a folder of
    ``ILSVRC2012_val_*.JPEG``) into ``out/<wnid>/`` by the labels of ``labels`` (see `read_labels`).
    From a folder, images are copied, or moved with ``move``. DatasetError, after keeping every finished
    image, when the source is the wrong archive, is cut short, or lacks images that the labels list."""
    source, out = Path(source), Path(out)
    wanted = read_labels(labels)  # before touching anything: a wrong labels file fails here
    if not source.exists():
        raise DatasetError(f"no images at {source}: give ILSVRC2012_img_val.tar or the folder of its images.")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*/*.part"):  # left by a run that stopped while writing it
        stale.unlink()
    report = PrepareReport()
    seen: set[str] = set()
    show = bool(progress) or (progress is None and sys.stderr.isatty())
    bar = tqdm(total=len(wanted), desc="prepare-imagenet", unit="img", disable=not show)
    try:
        for name, write, release in _images(source, move):
            wnid = wanted.get(name)
            if wnid is None:
                report.unlabelled.append(name)
                if not seen and len(report.unlabelled) >= 20:
                    raise DatasetError(
                        f"the first {len(report.unlabelled)} images of {source} ({report.unlabelled[0]}, ...) "
                        f"have no label in {labels}: are they the validation images of the same release?")
                continue
            seen.add(name)
            target = out / wnid / name
            if target.exists():
                report.present += 1
            else:
                target.parent.mkdir(exist_ok=True)
                part = target.with_name(target.name + ".part")
                try:
                    write(part)
                except BaseException:  # a cut archive or Ctrl-C: leave no partial image behind
                    part.unlink(missing_ok=True)
                    raise
                os.replace(part, target)
                report.written += 1
            release()  # with move, the source file goes only now that the image is whole at its place
            bar.update(1)
    except (tarfile.ReadError, EOFError) as err:
        raise DatasetError(
            f"{source} ends early ({err}) after {len(seen)} images: the download was probably cut short. "
            f"The {report.total} images sorted so far are kept in {out}; download the archive again and rerun "
            "to finish.") from err
    finally:
        bar.close()
    missing = sorted(name for name, wnid in wanted.items() if not (out / wnid / name).exists())
    if missing:  # judged by what is in place, so that images moved by an earlier run count as done
        raise DatasetError(
            f"{source} lacks {len(missing)} of the {len(wanted)} images that {Path(labels).name} lists "
            f"({', '.join(missing[:3])}, ...). The {len(wanted) - len(missing)} found are sorted into {out}; "
            "give the complete archive and rerun to add the rest.")
    (out / DONE_FILE).write_text(json.dumps({"images": len(wanted), "classes": len(set(wanted.values())),
                                             "source": str(source.resolve()), "labels": str(Path(labels).resolve())},
                                            indent=1))
    return report


Writer = Callable[[Path], None]


def _keep() -> None:
    pass


def _images(source: Path, move: bool) -> Iterator[tuple[str, Writer, Callable[[], None]]]:
    """(file name, writer, release) for each image of the source: ``writer(path)`` writes the image's
    bytes to ``path``; ``release()`` removes the source file when moving (else does nothing)."""
    if source.is_dir():
        yield from _folder_images(source, move)
    else:
        if move:
            raise DatasetError("--move applies to a folder of images; an archive is only read.")
        yield from _tar_images(source)


def _folder_images(source: Path, move: bool) -> Iterator[tuple[str, Writer, Callable[[], None]]]:
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.upper() == ".JPEG")
    if not files:
        nested = sorted(p.name for p in source.iterdir() if p.is_dir())[:3]
        hint = f" (it holds folders such as {', '.join(nested)}: is it already sorted?)" if nested else ""
        raise DatasetError(f"{source} has no .JPEG files{hint}.")
    for path in files:
        def write(target: Path, path: Path = path) -> None:
            _copy(path, target, move)

        yield path.name, write, (path.unlink if move else _keep)


def _copy(path: Path, target: Path, link: bool) -> None:
    """Copy ``path`` to ``target``; when moving, a hard link instead where the file system allows it
    (instant, and the source stays until the caller has put the image in place)."""
    if link:
        try:
            os.link(path, target)
            return
        except OSError:
            pass  # another file system: copy
    shutil.copyfile(path, target)


def _tar_images(source: Path) -> Iterator[tuple[str, Writer, Callable[[], None]]]:
    try:
        tar = tarfile.open(source, "r|*")  # streamed: one pass over a 6.4 GB file, nothing held in memory
    except tarfile.TarError as err:
        raise DatasetError(f"{source} is not a tar archive ({err}): give ILSVRC2012_img_val.tar.") from err
    with tar:
        for member in tar:
            if not member.isfile():
                continue
            name = Path(member.name).name
            if name.endswith(".tar"):
                raise DatasetError(f"{source} holds archives such as {name}: it is the training set "
                                   "(ILSVRC2012_img_train.tar); prepare-imagenet sorts the validation set, "
                                   "ILSVRC2012_img_val.tar.")
            fh = tar.extractfile(member)

            def write(target: Path, fh: BinaryIO | None = fh) -> None:
                with open(target, "wb") as dst:
                    shutil.copyfileobj(fh, dst)

            yield name, write, _keep
