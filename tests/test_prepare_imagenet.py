"""prepare-imagenet on small fake archives of each kind people have: the official validation tar with the
devkit (or valprep.sh, or a wnid list), and Kaggle's folder with LOC_val_solution.csv; wrong and cut-short
archives, and a run stopped midway that a rerun finishes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import random_image

from gradeclip_lib.cli import main
from gradeclip_lib.errors import DatasetError
from gradeclip_lib.evaluation import folder_classes, imagenet_wnids
from gradeclip_lib.evaluation import prepare as prep
from gradeclip_lib.evaluation.data import list_images
from gradeclip_lib.evaluation.imagenet_labels import read_labels, val_name
from gradeclip_lib.evaluation.prepare import prepare_imagenet

N = 7
WNIDS = imagenet_wnids()
TRUTH = [WNIDS[k] for k in (3, 999, 3, 0, 512, 42, 999)]  # image i's class; two pairs share one


def jpeg_bytes(i: int) -> bytes:
    buf = io.BytesIO()
    random_image(24, 30, seed=i).save(buf, format="JPEG")
    return buf.getvalue()


def make_val_tar(path: Path, indices=range(1, N + 1)) -> Path:
    with tarfile.open(path, "w") as tar:
        for i in indices:
            data = jpeg_bytes(i)
            info = tarfile.TarInfo(val_name(i))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_devkit(path: Path) -> Path:
    """A devkit whose class ids follow their own order (as the real one's: id 1 is not n01440764), with
    WordNet ancestors (num_children > 0) among the synsets, as in the real meta.mat."""
    import scipy.io

    order = WNIDS[::-1]  # devkit id k + 1 -> order[k]
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O")]
    rows = [(k + 1, w, f"class {w}", "", 0) for k, w in enumerate(order)]
    rows += [(1001, "n00001740", "entity", "", 3), (1002, "n00002137", "abstraction", "", 2)]
    root = path.parent / "devkit_src" / "ILSVRC2012_devkit_t12" / "data"
    root.mkdir(parents=True)
    scipy.io.savemat(root / "meta.mat", {"synsets": np.array(rows, dtype=dtype)})
    ids = [order.index(w) + 1 for w in TRUTH]
    (root / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{i}\n" for i in ids))
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root.parent, arcname="ILSVRC2012_devkit_t12")
    return path


def make_valprep(path: Path) -> Path:
    lines = [f"mkdir -p {w}" for w in sorted(set(TRUTH))]
    lines += [f"mv {val_name(i)} {w}/" for i, w in enumerate(TRUTH, start=1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_kaggle(root: Path) -> tuple[Path, Path]:
    val = root / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    val.mkdir(parents=True)
    for i in range(1, N + 1):
        (val / val_name(i)).write_bytes(jpeg_bytes(i))
    csv = root / "LOC_val_solution.csv"
    rows = [f"{val_name(i)[:-5]},{w} 10 12 20 22 {w} 1 2 3 4" for i, w in enumerate(TRUTH, start=1)]
    csv.write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    return val, csv


def sorted_as_expected(out: Path) -> None:
    for i, wnid in enumerate(TRUTH, start=1):
        assert (out / wnid / val_name(i)).read_bytes() == jpeg_bytes(i)
    assert sum(1 for _ in out.glob("*/*")) == N and not list(out.glob("*/*.part"))
    classes = folder_classes(out)  # what evaluate reads: ImageNet classes in ImageNet order
    assert classes.imagenet
    labels = {Path(item.key).name: item.label for item in list_images(out, classes)}
    assert labels == {val_name(i): WNIDS.index(w) for i, w in enumerate(TRUTH, start=1)}


@pytest.mark.parametrize("kind", ["devkit", "devkit folder", "valprep", "wnid list"])
def test_official_tar_with_each_kind_of_ground_truth(tmp_path, kind):
    tar = make_val_tar(tmp_path / "ILSVRC2012_img_val.tar")
    if kind.startswith("devkit"):
        labels = make_devkit(tmp_path / "ILSVRC2012_devkit_t12.tar.gz")
        if kind == "devkit folder":
            labels = tmp_path / "devkit_src"
    elif kind == "valprep":
        labels = make_valprep(tmp_path / "valprep.sh")
    else:
        labels = tmp_path / "val_wnids.txt"
        labels.write_text("\n".join(TRUTH) + "\n")
    report = prepare_imagenet(tar, labels, tmp_path / "val")
    assert (report.written, report.present, report.unlabelled) == (N, 0, [])
    sorted_as_expected(tmp_path / "val")
    again = prepare_imagenet(tar, labels, tmp_path / "val")  # a rerun has nothing left to do
    assert (again.written, again.present) == (0, N)


@pytest.mark.parametrize("move", [False, True])
def test_kaggle_folder_and_csv(tmp_path, move):
    val, csv = make_kaggle(tmp_path / "kaggle")
    prepare_imagenet(val, csv, tmp_path / "val", move=move)
    sorted_as_expected(tmp_path / "val")
    assert len(list(val.iterdir())) == (0 if move else N)


def test_the_command_line_sorts_and_says_what_next(tmp_path, capsys):
    val, csv = make_kaggle(tmp_path / "kaggle")
    assert main(["prepare-imagenet", str(val), "--labels", str(csv), "--out", str(tmp_path / "val")]) == 0
    printed = capsys.readouterr().out
    assert f"{N} images in" in printed and "evaluate --data" in printed
    sorted_as_expected(tmp_path / "val")


def test_a_stop_midway_loses_nothing_and_a_rerun_finishes(tmp_path, monkeypatch):
    val, csv = make_kaggle(tmp_path / "kaggle")
    real_copy, calls = prep._copy, []

    def copy_then_die(path, target, link):
        calls.append(path)
        if len(calls) == 4:  # killed while writing the 4th image: half of it on disk
            target.write_bytes(path.read_bytes()[:100])
            raise KeyboardInterrupt
        real_copy(path, target, link)

    monkeypatch.setattr(prep, "_copy", copy_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare_imagenet(val, csv, tmp_path / "val", move=True)
    out = tmp_path / "val"
    assert sum(1 for _ in out.glob("*/*.JPEG")) == 3 and not list(out.glob("*/*.part"))
    assert len(list(val.iterdir())) == N - 3  # only the sorted images left the source
    monkeypatch.setattr(prep, "_copy", real_copy)
    report = prepare_imagenet(val, csv, out, move=True)  # the 3 moved before the stop count as done
    assert (report.written, report.present) == (N - 3, 0)
    sorted_as_expected(out)


def test_a_cut_archive_keeps_what_was_sorted_and_says_so(tmp_path):
    full = make_val_tar(tmp_path / "full.tar").read_bytes()
    cut = tmp_path / "ILSVRC2012_img_val.tar"
    cut.write_bytes(full[: len(full) // 2])
    labels = make_valprep(tmp_path / "valprep.sh")
    with pytest.raises(DatasetError, match="ends early") as err:
        prepare_imagenet(cut, labels, tmp_path / "val")
    assert "download the archive again" in str(err.value)
    kept = sorted((tmp_path / "val").glob("*/*"))
    assert kept and all(p.suffix == ".JPEG" for p in kept)  # whole images only
    assert all(p.read_bytes() == jpeg_bytes(int(p.stem[-8:])) for p in kept)
    cut.write_bytes(full)  # the archive downloaded again
    report = prepare_imagenet(cut, labels, tmp_path / "val")
    assert report.present == len(kept) and report.total == N
    sorted_as_expected(tmp_path / "val")


def test_an_incomplete_archive_names_what_is_missing(tmp_path):
    tar = make_val_tar(tmp_path / "val.tar", indices=range(1, N))  # the last image absent
    with pytest.raises(DatasetError, match=rf"lacks 1 of the {N} images .*{val_name(N)}"):
        prepare_imagenet(tar, make_valprep(tmp_path / "valprep.sh"), tmp_path / "val")
    assert sum(1 for _ in (tmp_path / "val").glob("*/*.JPEG")) == N - 1
    assert not (tmp_path / "val" / prep.DONE_FILE).exists()


def test_wrong_archives_and_labels_say_what_to_give(tmp_path):
    labels = make_valprep(tmp_path / "valprep.sh")
    train = tmp_path / "ILSVRC2012_img_train.tar"
    with tarfile.open(train, "w") as tar:
        inner = make_val_tar(tmp_path / f"{WNIDS[0]}.tar")
        tar.add(inner, arcname=inner.name)
    with pytest.raises(DatasetError, match="training set"):
        prepare_imagenet(train, labels, tmp_path / "out")
    not_tar = tmp_path / "val.tar"
    not_tar.write_bytes(b"not an archive at all" * 50)
    with pytest.raises(DatasetError, match="not a tar archive"):
        prepare_imagenet(not_tar, labels, tmp_path / "out")
    ids = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    ids.write_text("490\n361\n171\n")
    with pytest.raises(DatasetError, match="whole devkit"):
        read_labels(ids)
    odd = tmp_path / "wnids.txt"
    odd.write_text("n01440764\nn99999999\n")
    with pytest.raises(DatasetError, match="outside ImageNet-1k .*n99999999"):
        read_labels(odd)
    bad_csv = tmp_path / "other.csv"
    bad_csv.write_text("file,label\nx,y\n")
    with pytest.raises(DatasetError, match="LOC_val_solution.csv"):
        read_labels(bad_csv)
    with pytest.raises(DatasetError, match="no labels file"):
        read_labels(tmp_path / "absent.csv")
    others = tmp_path / "others"
    others.mkdir()
    for i in range(25):
        random_image(8, 8, seed=i).save(others / f"IMG_{i:04d}.JPEG")
    with pytest.raises(DatasetError, match="have no label"):
        prepare_imagenet(others, labels, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*/*"))
