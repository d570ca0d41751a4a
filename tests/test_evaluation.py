"""Deletion / insertion at scale: the vectorised protocol against a plain per-image, per-step loop written
here, the RISE causal metric against its loop, AUCs on known curves, data folders (ImageNet wnids, corrupt
files, wrong layouts), the zero-shot cache, and the command line's resume after a kill and torchrun sharding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from conftest import random_image
from PIL import Image

import gradeclip_lib as gl
from gradeclip_lib.errors import DatasetError
from gradeclip_lib.evaluation import (
    Batch,
    MethodSpec,
    ZeroShot,
    auc,
    causal_auc,
    causal_curves,
    checkpoint_counts,
    clean_logits,
    deletion_insertion,
    explain_batch,
    folder_classes,
    noise_image,
    zero_shot_classifier,
)
from gradeclip_lib.evaluation.classes import ClassSet
from gradeclip_lib.evaluation.data import Item, list_images
from gradeclip_lib.evaluation.preprocess import crop_batch
from gradeclip_lib.evaluation.records import RecordWriter, read_records
from gradeclip_lib.evaluation.run import interleaved, summary
from gradeclip_lib.synthetic.folder import export_folder

ROOT = Path(__file__).resolve().parent.parent


def as_uint8(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()


def classifier(clip: gl.Clip, n_classes: int = 7, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    dim = clip.model.text_projection.shape[1]
    return torch.nn.functional.normalize(torch.randn(dim, n_classes, generator=gen), dim=0)


# ----------------------------------------------------------------- the plain references
def reference_curves(zs: ZeroShot, image: np.ndarray, heat: np.ndarray, noise: np.ndarray, label: int, cls: int):
    """The authors' loop: 100 steps of 0.5 % of the pixels, scored every 10 steps, one image at a time."""
    h, w = heat.shape
    order = np.argsort(-heat.reshape(-1), kind="stable")
    once = max(1, int(h * w / 200))
    deleted, inserted = image.copy(), np.zeros_like(image)
    shots = {"deletion": [deleted.copy()], "insertion": [inserted.copy()]}
    for step in range(1, 101):
        sel = order[(step - 1) * once : step * once]
        ys, xs = sel // w, sel % w
        deleted[ys, xs, :] = noise[ys, xs, :]
        inserted[ys, xs, :] = image[ys, xs, :]
        if step % 10 == 0:
            shots["deletion"].append(deleted.copy())
            shots["insertion"].append(inserted.copy())
    curves = {}
    for mode, frames in shots.items():
        probs, top1, top5 = [], [], []
        for frame in frames:  # one forward per checkpoint
            logits = zs.logits(crop_batch(zs.clip, torch.from_numpy(frame).permute(2, 0, 1)[None]))[0]
            probs.append(float(logits.softmax(-1)[cls]))
            ranked = logits.argsort(descending=True).tolist()
            top1.append(float(ranked[0] == label))
            top5.append(float(label in ranked[:5]))
        curves.update({f"{mode}_prob": probs, f"{mode}_top1": top1, f"{mode}_top5": top5})
    return curves


def reference_causal(zs: ZeroShot, crop: torch.Tensor, heat: torch.Tensor, cls: int, step: int, mode: str):
    """RISE's loop: start from the image (deletion) or a blurred copy (insertion), change ``step`` pixels
    in the order of the map after every score."""
    import torchvision.transforms.functional as TF

    size = crop.shape[-1]
    n = -(-size * size // step)
    finish = torch.zeros_like(crop) if mode == "deletion" else crop.clone()
    current = crop.clone() if mode == "deletion" else TF.gaussian_blur(crop[None], 11, 5.0)[0]
    order = np.argsort(-heat.reshape(-1).numpy(), kind="stable")
    probs = []
    for i in range(n + 1):
        probs.append(float(zs.logits(current[None])[0].softmax(-1)[cls]))
        sel = torch.from_numpy(order[i * step : (i + 1) * step])
        current.view(3, -1)[:, sel] = finish.view(3, -1)[:, sel]
    return probs


# ----------------------------------------------------------------- protocol
@pytest.fixture
def batch_inputs(tiny):
    sizes = [(40, 56), (37, 45), (40, 56), (64, 48)]
    pixels = [as_uint8(random_image(h, w, seed=i)) for i, (h, w) in enumerate(sizes)]
    noise = [noise_image(f"img{i}", *p.shape[-2:]) for i, p in enumerate(pixels)]
    labels = [3, 1, 5, 0]
    zs = ZeroShot(tiny, classifier(tiny), batch_size=16)
    return zs, Batch.build(pixels, noise, labels, tiny.device)


@pytest.mark.parametrize("method", ["grad_eclip", "ties"])
def test_vectorised_protocol_equals_the_per_image_loop(batch_inputs, method):
    zs, batch = batch_inputs
    clean = clean_logits(zs, batch)
    classes = torch.tensor([3, 2, 5, 6])
    if method == "ties":  # a map with large ties: both must break them in raster order
        maps = [torch.round(torch.rand(*p.shape[-2:], generator=torch.Generator().manual_seed(i)) * 3)
                for i, p in enumerate(batch.pixels)]
    else:
        maps = explain_batch(zs.clip, batch, zs.weights[:, classes].T, method)
    curves = deletion_insertion(zs, batch, maps, classes, clean, rows_per_build=7)
    for i in range(len(batch)):
        ref = reference_curves(zs, batch.pixels[i].permute(1, 2, 0).numpy(), maps[i].numpy(),
                               batch.noise[i].permute(1, 2, 0).numpy(), int(batch.labels[i]), int(classes[i]))
        for name, values in ref.items():
            torch.testing.assert_close(curves[name][i], torch.tensor(values), atol=1e-5, rtol=1e-4, msg=name)


def test_checkpoints_change_exactly_the_counted_pixels(batch_inputs):
    zs, batch = batch_inputs
    from gradeclip_lib.evaluation import perturbed, pixel_ranks

    image = batch.pixels[1].clamp_min(1)[None].expand(11, -1, -1, -1)  # no black pixel of its own
    h, w = image.shape[-2:]
    counts = torch.tensor(checkpoint_counts(h, w))
    assert counts[-1] == 10 * 10 * max(1, h * w // 200) and counts[-1] <= h * w // 2
    ranks = pixel_ranks(torch.rand(1, h, w)).expand(11, -1)
    noise = (255 - image).clone()  # differs from the image everywhere
    deleted = perturbed(image, ranks, counts, "deletion", noise)
    inserted = perturbed(image, ranks, counts, "insertion")
    assert torch.equal((deleted != image).any(1).flatten(1).sum(1), counts)
    assert torch.equal((inserted != 0).any(1).flatten(1).sum(1), counts)


def test_noise_depends_only_on_key_and_seed():
    a, b = noise_image("x/1.jpg", 5, 7), noise_image("x/1.jpg", 5, 7)
    assert torch.equal(a, b) and a.dtype == torch.uint8 and int(a.max()) <= 254
    assert not torch.equal(a, noise_image("x/2.jpg", 5, 7)) and not torch.equal(a, noise_image("x/1.jpg", 5, 7, 1))


def test_tensor_crop_matches_the_models_pil_preprocessing(tiny):
    for h, w in [(40, 56), (75, 33), (32, 32)]:
        image = random_image(h, w, seed=h)
        diff = (crop_batch(tiny, as_uint8(image)[None])[0] - tiny.crop(image)[0]).abs()
        levels = diff * torch.tensor(tiny.std).view(3, 1, 1) * 255  # in grey levels
        assert crop_batch(tiny, as_uint8(image)[None]).shape == tiny.crop(image).shape
        assert float(levels.max()) <= 2.01 and float(levels.mean()) < 0.5


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_causal_metric_equals_rise_loop(batch_inputs, mode):
    zs, batch = batch_inputs
    classes = torch.tensor([0, 1, 2, 3])
    maps = [torch.rand(*p.shape[-2:], generator=torch.Generator().manual_seed(i)) for i, p in enumerate(batch.pixels)]
    curves = causal_curves(zs, batch, maps, classes, step=48, rows_per_build=10)
    from gradeclip_lib.evaluation.causal import crop_maps

    assert curves[f"causal_{mode}"].shape == (4, 32 * 32 // 48 + 2)
    for i in range(len(batch)):
        crop = crop_batch(zs.clip, batch.pixels[i][None])[0]
        heat = crop_maps(maps[i][None], 32)[0]
        ref = reference_causal(zs, crop, heat, int(classes[i]), 48, mode)
        torch.testing.assert_close(curves[f"causal_{mode}"][i], torch.tensor(ref), atol=1e-5, rtol=1e-4)


def test_auc_on_known_curves():
    assert auc([1.0] * 11) == pytest.approx(0.5)
    assert auc([k / 20 for k in range(11)]) == pytest.approx(0.125)  # y = x on [0, 0.5]
    assert auc([0, 1], x=[0, 2]) == pytest.approx(1.0)
    torch.testing.assert_close(auc(torch.ones(3, 11)), torch.full((3,), 0.5, dtype=torch.float64))
    assert float(causal_auc(torch.ones(9))) == pytest.approx(1.0)
    assert float(causal_auc(torch.linspace(1, 0, 5))) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        auc([1.0] * 10)


def loop_efficiency(curve, full, level=0.9):
    """The first crossing of level * full, walked checkpoint by checkpoint (the plain reading)."""
    xs = [k / 20 for k in range(11)]
    goal = level * full
    for k, y in enumerate(curve):
        if y >= goal:
            if k == 0:
                return 0.0
            return xs[k - 1] + (xs[k] - xs[k - 1]) * (goal - curve[k - 1]) / (y - curve[k - 1])
    return float("nan")


def test_insertion_efficiency_on_known_curves_and_against_a_loop():
    from gradeclip_lib.evaluation.curves import insertion_efficiency, median_share

    line = [2 * k / 20 for k in range(11)]  # y = 2x: 0.9 of 1.0 is reached at x = 0.45
    assert float(insertion_efficiency(line, 1.0)) == pytest.approx(0.45)
    assert float(insertion_efficiency(line, 0.5)) == pytest.approx(0.225)
    assert float(insertion_efficiency([0.95] * 11, 1.0)) == 0.0  # black already scores enough
    assert insertion_efficiency([0.1] * 11, 1.0).isnan()  # never within 50 %
    gen = torch.Generator().manual_seed(0)
    curves = torch.rand(200, 11, generator=gen)  # not monotone: the first crossing counts
    full = torch.rand(200, generator=gen) * 1.2
    got = insertion_efficiency(curves, full)
    want = torch.tensor([loop_efficiency(c.double().tolist(), float(f)) for c, f in zip(curves, full)],
                        dtype=torch.float64)
    torch.testing.assert_close(got, want, equal_nan=True)
    assert 0 < int(got.isnan().sum()) < 200
    assert median_share(torch.tensor([0.1, float("nan"), 0.3])) == pytest.approx(0.3)
    assert median_share(torch.tensor([0.1, 0.2, 0.3, 0.5])) == pytest.approx(0.25)
    assert median_share(torch.tensor([0.1, float("nan"), float("nan")])) == float("inf")


# ----------------------------------------------------------------- data
def make_folder(root: Path, classes: dict[str, int], size=(40, 52)) -> Path:
    for i, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for j in range(count):
            random_image(*size, seed=10 * i + j).save(root / name / f"{j}.jpg")
    return root


def test_imagenet_wnid_folders_get_imagenet_names_and_order(tmp_path):
    root = make_folder(tmp_path / "val", {"n01443537": 1, "n01440764": 2})
    classes = folder_classes(root)
    assert classes.imagenet and len(classes.names) == 1000 and len(classes.templates) == 80
    assert classes.names[classes.index("n01440764")] == open_clip.IMAGENET_CLASSNAMES[0] == "tench"
    assert classes.index("n01443537") == 1 and "a photo of a {}." in classes.templates
    items = list_images(root, classes)
    assert [(i.key, i.label) for i in items] == [("n01440764/0.jpg", 0), ("n01440764/1.jpg", 0),
                                                 ("n01443537/0.jpg", 1)]


def test_named_folders_and_templates(tmp_path):
    root = make_folder(tmp_path / "d", {"golden_retriever": 1, "cat": 1})
    classes = folder_classes(root)
    assert classes.names == ("cat", "golden retriever") and not classes.imagenet
    assert len(classes.templates) == 80  # OpenAI's templates for a model other than ShapesWorld
    (root / "templates.txt").write_text("a photo of a {}\n\nart of a {}\n")
    assert folder_classes(root).templates == ("a photo of a {}", "art of a {}")
    (root / "templates.txt").write_text("no placeholder\n")
    with pytest.raises(DatasetError, match="template"):
        folder_classes(root)


def test_wrong_layouts_say_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="no folder"):
        folder_classes(tmp_path / "missing")
    random_image(20, 20).save(tmp_path / "loose.jpg")
    with pytest.raises(DatasetError, match=r"DIR/<class>/<image>.*|loose\.jpg"):
        folder_classes(tmp_path)
    make_folder(tmp_path / "mixed", {"n01440764": 1, "dogs": 1})
    with pytest.raises(DatasetError, match="mixes ImageNet"):
        folder_classes(tmp_path / "mixed")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        list_images(tmp_path / "empty", folder_classes(tmp_path / "empty"))


def test_interleaved_order_spreads_a_limit_over_classes():
    items = [Item(f"{c}/{j}", c) for c in range(3) for j in range(3 - c)]
    assert [(i.label) for i in interleaved(items)] == [0, 1, 2, 0, 1, 0]


def test_method_specs():
    assert MethodSpec.parse("grad_eclip:paper").options == {"mode": "paper"}
    assert MethodSpec.parse("grad_eclip:forward").options == {"mode": "forward"}
    with pytest.warns(DeprecationWarning, match='use mode="forward"'):  # the older name of "forward"
        assert MethodSpec.parse("grad_eclip:faithful").options == {"mode": "forward"}
    spec = MethodSpec.parse("rise:n_masks=50;p=0.3")
    assert (spec.name, spec.options, spec.label) == ("rise", {"n_masks": 50, "p": 0.3}, "rise:n_masks=50;p=0.3")
    for bad in ("nope", "rise:paper"):
        with pytest.raises(ValueError):
            MethodSpec.parse(bad)


def test_zero_shot_classifier_is_cached_per_model(tiny, tmp_path, monkeypatch):
    classes = ClassSet(("a", "b"), ("red circle", "blue star"), ("a photo of a {}", "{}"))
    first = zero_shot_classifier(tiny, classes, cache=tmp_path)
    assert first.shape == (32, 2)
    torch.testing.assert_close(first[:, 1], torch.nn.functional.normalize(
        tiny.encode_text(["a photo of a blue star", "blue star"]).mean(0), dim=0))
    monkeypatch.setattr(open_clip, "build_zero_shot_classifier", lambda *a, **k: pytest.fail("not cached"))
    assert torch.equal(zero_shot_classifier(tiny, classes, cache=tmp_path), first)
    other = gl.load_clip("shapes", pretrained=None)  # other weights: another cache entry
    with pytest.raises(BaseException, match="not cached"):
        zero_shot_classifier(other, classes, cache=tmp_path)


def test_records_survive_a_half_written_line(tmp_path):
    path = tmp_path / "r.jsonl"
    with RecordWriter(path) as w:
        w.write([{"image": "a", "method": "m", "target": "gt"}])
    with open(path, "a") as fh:
        fh.write('{"image": "b", "meth')  # what a kill in the middle of a write leaves
    assert [r["image"] for r in read_records(path)] == ["a"]
    with RecordWriter(path) as w:
        w.write([{"image": "c", "method": "m", "target": "gt"}])
    assert [json.loads(line)["image"] for line in path.read_text().splitlines()] == ["a", "c"]


# ----------------------------------------------------------------- command line on ShapesWorld
@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    return export_folder(tmp_path_factory.mktemp("shapes") / "scenes", 40, seed=77, size=64)


def cli(*args: str, env_extra: dict | None = None, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", "gradeclip_lib", "evaluate", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def keys(path: Path) -> list[tuple]:
    return [(r["image"], r["method"], r["target"]) for r in read_records(path)]


@pytest.fixture(scope="module")
def few_shapes(tmp_path_factory):
    """Four scenes: two batches of records (16) to kill a run between, few enough to run it four times."""
    return export_folder(tmp_path_factory.mktemp("few") / "scenes", 4, seed=77, size=64)


def test_resume_after_a_kill_writes_every_record_once(few_shapes, tmp_path):
    common = ["--data", str(few_shapes), "--model", "shapes", "--methods", "grad_eclip,self_attention",
              "--targets", "gt,pred", "--batch-size", "2", "--workers", "0", "--cache-dir", str(tmp_path / "c")]
    out = tmp_path / "run.jsonl"
    proc = cli(*common, "--out", str(out))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and (not out.exists() or len(out.read_bytes()) < 2000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    partial = keys(out)
    assert 0 < len(partial) < 4 * 4
    resumed = cli(*common, "--out", str(out))
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    got = keys(out)
    assert len(got) == len(set(got)) == 4 * 4 and got[: len(partial)] == partial
    assert "grad_eclip" in stdout and "ins top1" in stdout  # the summary table

    straight = tmp_path / "straight.jsonl"
    once = cli(*common, "--out", str(straight))
    assert once.wait(timeout=300) == 0
    a = {(r["image"], r["method"], r["target"]): r for r in read_records(out)}
    b = {(r["image"], r["method"], r["target"]): r for r in read_records(straight)}
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k]["deletion_prob"], b[k]["deletion_prob"], atol=1e-4)
        assert a[k]["insertion_top1"] == b[k]["insertion_top1"]
    rerun = cli(*common, "--out", str(out))
    assert rerun.wait(timeout=120) == 0 and keys(out) == got  # nothing left to do, nothing written twice


def test_grad_eclip_beats_the_random_floor_on_shapes_from_the_command_line(shapes_folder, tmp_path):
    from gradeclip_lib.cli import main

    out = tmp_path / "r.jsonl"
    args = ["evaluate", "--data", str(shapes_folder), "--model", "shapes", "--methods", "grad_eclip,random",
            "--out", str(out), "--workers", "0", "--cache-dir", str(tmp_path / "c")]
    assert main(args) == 0
    rows = {r["method"]: r for r in summary(out)}
    assert rows["grad_eclip"]["images"] == rows["random"]["images"] == 40
    assert rows["grad_eclip"]["deletion_top1_auc"] < rows["random"]["deletion_top1_auc"]
    assert rows["grad_eclip"]["insertion_top1_auc"] > rows["random"]["insertion_top1_auc"]
    for r in read_records(out):  # each record carries its own insertion efficiency (None: not by 50 %)
        want = loop_efficiency(r["insertion_prob"], r["deletion_prob"][0])
        assert (r["insertion_eff"] is None) if want != want else r["insertion_eff"] == pytest.approx(want, abs=1e-5)
    reach = {m: r["insertion_eff_reached"] for m, r in rows.items()}
    assert reach["grad_eclip"] > reach["random"]  # more images get 90 % of their probability back by 50 %


def test_the_random_floor_gives_an_image_the_same_map_in_any_batch(shapes_folder, tmp_path):
    from gradeclip_lib.evaluation import evaluate_folder

    clip = gl.load_clip("shapes")
    runs = {}
    for size in (3, 10):
        out = evaluate_folder(clip, shapes_folder, ["random", "random:seed=5"], tmp_path / f"b{size}.jsonl",
                              limit=10, batch_size=size, workers=0, cache=tmp_path / "c", progress=False)
        runs[size] = {(r["image"], r["method"]): r["deletion_prob"] for r in read_records(out)}
    assert runs[3].keys() == runs[10].keys() and len(runs[3]) == 20
    for key, curve in runs[3].items():  # keyed by image, not by position in the batch (scores: float noise)
        np.testing.assert_allclose(curve, runs[10][key], atol=1e-5)
    images = sorted({image for image, _ in runs[3]})
    differ = [np.abs(np.subtract(runs[3][i, "random"], runs[3][i, "random:seed=5"])).max() for i in images]
    assert max(differ) > 0.01  # the seed option counts


def test_corrupt_and_tiny_images_are_skipped_not_fatal(shapes_folder, tmp_path, capsys):
    import shutil

    from gradeclip_lib.cli import main

    data = tmp_path / "data"
    shutil.copytree(shapes_folder, data)
    (data / "red_circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    Image.new("RGB", (5, 5)).save(data / "red_circle" / "tiny.png")
    out = tmp_path / "r.jsonl"
    assert main(["evaluate", "--data", str(data), "--model", "shapes", "--methods", "random", "--out", str(out),
                 "--workers", "1", "--limit", "60", "--cache-dir", str(tmp_path / "c")]) == 0
    err = capsys.readouterr().err
    assert "red_circle/broken.png" in err and "red_circle/tiny.png" in err and "2 unreadable" in err
    assert len(keys(out)) == 40


def test_torchrun_shards_and_merges(shapes_folder, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this python")
    out = tmp_path / "sharded.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = [str(torchrun), "--nproc_per_node=2", "--master_port", "29517", "-m", "gradeclip_lib", "evaluate",
            "--data", str(shapes_folder), "--model", "shapes", "--methods", "self_attention", "--out", str(out),
            "--workers", "0", "--limit", "13", "--cache-dir", str(tmp_path / "c"), "--device", "cpu"]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = keys(out)
    assert len(got) == len(set(got)) == 13
    assert not list(tmp_path.glob("sharded.rank*"))  # merged and removed
    assert done.stdout.count("self_attention") == 1  # one summary, from rank 0


# ----------------------------------------------------------------- figures and the results' sidecar
def test_checkpoint_frames_and_mean_curves_plot(batch_inputs):
    from gradeclip_lib.evaluation.plots import checkpoint_frames, plot_curves

    zs, batch = batch_inputs
    image, noise = batch.pixels[0].clamp_min(1), batch.noise[0]
    heat = torch.rand(*image.shape[-2:])
    frames = checkpoint_frames(image, heat, "insertion")
    counts = checkpoint_counts(*image.shape[-2:])
    assert [int((f != 0).any(0).sum()) for f in frames] == counts
    assert torch.equal(checkpoint_frames(image, heat, "deletion", noise)[0], image)

    records = [{"method": m, "deletion_top1": [v] * 11, "insertion_top1": [1 - v] * 11}
               for m, v in (("a", 0.2), ("a", 0.4), ("random", 0.9))]
    fig = plot_curves(records, "top1")
    lines = {ln.get_label(): ln.get_ydata() for ln in fig.axes[0].lines}
    np.testing.assert_allclose(lines["a"], [0.3] * 11)
    np.testing.assert_allclose(lines["random"], [0.9] * 11)


def test_efficiency_plot_is_the_share_of_images_back_at_each_x():
    from gradeclip_lib.evaluation.plots import plot_efficiency

    line = [k / 10 for k in range(11)]  # y = 2x: 90 % of 1.0 at x = 0.45, of 0.5 at 0.225
    records = [{"method": "a", "insertion_prob": line, "deletion_prob": [full] * 11} for full in (1.0, 0.5)]
    records.append({"method": "a", "insertion_prob": [0.0] * 11, "deletion_prob": [1.0] * 11})  # never
    fig = plot_efficiency(records)
    (curve,) = fig.axes[0].lines
    x, y = curve.get_xdata(), curve.get_ydata()
    assert y[x < 22].max() == 0 and y[(x > 23) & (x < 44)].min() == pytest.approx(1 / 3)
    assert y[x > 46].min() == pytest.approx(2 / 3) and y.max() == pytest.approx(2 / 3)


def test_results_file_gets_a_sidecar_naming_model_and_machine(shapes_folder, tmp_path):
    from gradeclip_lib.evaluation import evaluate_folder
    from gradeclip_lib.evaluation.run import meta_file

    clip = gl.load_clip("shapes")
    out = evaluate_folder(clip, shapes_folder, ["random"], tmp_path / "r.jsonl", limit=5, workers=0,
                          cache=tmp_path / "c", progress=False)
    meta = json.loads(meta_file(out).read_text())
    assert meta["model"] == "shapes" and meta["records"] == 5 and meta["last_run"]["images"] == 5
    assert "threads" in meta["device"] and meta["methods"] == ["random"]
    evaluate_folder(clip, shapes_folder, ["random"], out, limit=7, workers=0, cache=tmp_path / "c", progress=False)
    meta = json.loads(meta_file(out).read_text())
    assert meta["records"] == 7 and meta["last_run"]["images"] == 2  # only the two new images ran


def test_speed_bench_folder_and_ratio(tmp_path):
    from gradeclip_lib.evaluation.speed import IMAGENET_SIZES, jpeg_folder, report_evaluation

    root = jpeg_folder(tmp_path / "j", 7, n_classes=3)
    files = sorted(root.glob("*/*.jpg"))
    assert len(files) == 7 and {Image.open(f).size[::-1] for f in files} <= set(IMAGENET_SIZES)
    assert folder_classes(root).templates == ("a photo of a {}.",)
    rows = [{"what": "evaluation, vectorised (deletion + insertion, gt)", "device": "cpu", "dtype": "fp32",
             "images": 8, "images_per_s": 3.0},
            {"what": "evaluation, per-image loop", "device": "cpu", "dtype": "fp32", "images": 8, "images_per_s": 1.5}]
    assert "ratio vectorised / per-image loop (cpu, fp32): 2.00x" in report_evaluation(rows)


def test_large_images_are_downscaled_to_a_640_shorter_side(tmp_path):
    from gradeclip_lib.evaluation.data import read_pixels

    Image.new("RGB", (1000, 700), (10, 20, 30)).save(tmp_path / "big.png")
    Image.new("RGB", (500, 375)).save(tmp_path / "small.png")
    assert tuple(read_pixels(tmp_path / "big.png").shape) == (3, 640, 914)  # as the scripts: int(w / scale)
    assert tuple(read_pixels(tmp_path / "small.png").shape) == (3, 375, 500)
    assert read_pixels(tmp_path / "big.png")[:, 0, 0].tolist() == [10, 20, 30]


def test_summary_tables_from_records():
    from gradeclip_lib.evaluation import format_summary, summary_html

    def rec(method, image, d):
        return {"image": image, "method": method, "target": "gt",
                **{f"{m}_{w}": [d if m == "deletion" else 1 - d] * 11
                   for m in ("deletion", "insertion") for w in ("prob", "top1", "top5")}}

    records = [rec("a", "x", 0.2), rec("a", "y", 0.4), rec("b", "x", 0.1), rec("b", "y", 0.1)]
    rows = {r["method"]: r for r in summary(records)}
    assert rows["a"]["deletion_top1_auc"] == pytest.approx(0.15)  # mean of 0.5 * 0.2 and 0.5 * 0.4
    assert rows["a"]["deletion_top1_auc_se"] == pytest.approx(np.std([0.1, 0.2], ddof=1) / 2 ** 0.5)
    assert rows["b"]["insertion_prob_auc"] == pytest.approx(0.45) and rows["b"]["deletion_top1_auc_se"] == 0
    html = summary_html(list(rows.values()))
    assert html.index("<td>b</td>") < html.index("<td>a</td>")  # best deletion first
    assert "0.150\u00a0±\u00a00.050" in html
    text = format_summary(list(rows.values()))
    assert text.splitlines()[0].split()[:3] == ["method", "target", "images"] and "0.1500" in text
    # flat insertion curves at 0.8 and 0.6 against full probabilities 0.2 / 0.4 (a) and 0.1 (b)
    assert rows["a"]["insertion_eff_median"] == 0.0 and rows["a"]["insertion_eff_reached"] == 1.0
    slow = [dict(r, method="c", insertion_prob=[k / 20 for k in range(11)]) for r in records[:2]]
    row = summary(slow)[0]  # y = x reaches 0.9 * 0.2 at 0.18 and 0.9 * 0.4 at 0.36: median 0.27
    assert row["insertion_eff_median"] == pytest.approx(0.27) and row["insertion_eff_reached"] == 1.0
    never = [dict(r, method="d", insertion_prob=[0.0] * 11) for r in records[:2]]
    assert summary(never)[0]["insertion_eff_median"] == float("inf")
    assert "&gt; 50\u00a0%" in summary_html(summary(never)) and "> 0.5" in format_summary(summary(never))
    assert "27.0\u00a0%" in summary_html([row])


def test_cli_rejects_unknown_methods_and_targets_before_loading_anything(tmp_path, capsys):
    from gradeclip_lib.cli import main

    base = ["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "r.jsonl"), "--model", "nope"]
    assert main([*base, "--methods", "grad_eclip,gradcam"]) == 2
    assert "unknown method 'gradcam'" in capsys.readouterr().err
    assert main([*base, "--targets", "gt,label"]) == 2
    assert "unknown target 'label'" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r.jsonl"), "--model",
                 "shapes"]) == 2
    assert "DIR/<class>/<image>" in capsys.readouterr().err


def test_beats_floor_is_paired_image_by_image():
    from gradeclip_lib.evaluation import beats_floor

    def rec(method, image, d, i):
        return {"image": image, "method": method, "deletion_prob": [d] * 11, "insertion_prob": [i] * 11}

    records = [rec("random", "x", 0.5, 0.1), rec("random", "y", 0.2, 0.4),
               rec("m", "x", 0.3, 0.3), rec("m", "y", 0.3, 0.3), rec("m", "z", 0.0, 1.0)]  # z: no floor
    (row,) = beats_floor(records)
    assert row == {"method": "m", "images": 2, "deletion": 0.5, "insertion": 0.5}


def test_paired_area_gap_compares_the_images_both_methods_scored():
    from gradeclip_lib.evaluation import auc, paired_area_gap

    ramp = [1 - k / 10 for k in range(11)]
    curves = {("a", "x"): [0.1] * 11, ("a", "y"): [0.8] * 11, ("a", "z"): [0.0] * 11,
              ("b", "x"): ramp, ("b", "y"): [0.2] * 11}  # z: only a scored it
    records = [{"method": m, "image": i, "deletion_prob": c} for (m, i), c in curves.items()]
    gaps = [float(auc(torch.tensor(curves["a", i])) - auc(torch.tensor(curves["b", i]))) for i in ("x", "y")]
    mean, low, high = paired_area_gap(records, "a", "b", "deletion_prob")
    assert mean == pytest.approx(sum(gaps) / 2) and gaps[0] < 0 < gaps[1]
    assert low == pytest.approx(min(gaps)) and high == pytest.approx(max(gaps))  # two images: the extremes
    with pytest.raises(ValueError, match="no image was scored by both"):
        paired_area_gap(records, "a", "c", "deletion_prob")


def test_differ_and_tiers_on_known_areas():
    from gradeclip_lib.evaluation import differ, tiers

    rows = [{"method": m, "k": v, "k_se": se} for m, v, se in
            (("a", 0.10, 0.01), ("b", 0.12, 0.01), ("c", 0.20, 0.01), ("d", 0.21, 0.03), ("e", 0.50, 0.01))]
    r = {x["method"]: x for x in rows}
    assert not differ(r["a"], r["b"], "k")  # 0.02 < 2 * sqrt(2) * 0.01
    assert differ(r["a"], r["c"], "k")
    assert differ(r["a"], r["b"], "k", z=1.0)  # 0.02 > 1.41 * 0.01
    assert tiers(rows, "k", lower_is_better=True) == [["a", "b"], ["c", "d"], ["e"]]
    assert tiers(rows, "k", lower_is_better=False) == [["e"], ["d", "c"], ["b", "a"]]


def test_gt_and_pred_share_one_explanation_per_batch(shapes_folder, tmp_path, monkeypatch):
    """Both targets of an image in one call (one forward pass on the shared route), with the records that
    two separate runs give."""
    import gradeclip_lib.evaluation.run as run
    from gradeclip_lib.evaluation import evaluate_folder

    clip = gl.load_clip("shapes")
    calls = []
    original = run.explain_targets
    monkeypatch.setattr(run, "explain_targets", lambda clip, batch, texts, *a, **k: calls.append(
        (len(batch), len(texts))) or original(clip, batch, texts, *a, **k))
    common = {"limit": 12, "batch_size": 6, "workers": 0, "cache": tmp_path / "c", "progress": False}
    both = evaluate_folder(clip, shapes_folder, ["grad_eclip", "random"], tmp_path / "both.jsonl",
                           targets=("gt", "pred"), **common)
    assert calls == [(6, 2)] * 4  # 2 batches x 2 methods, each with both targets at once
    apart = {}
    for target in ("gt", "pred"):
        out = evaluate_folder(clip, shapes_folder, ["grad_eclip", "random"], tmp_path / f"{target}.jsonl",
                              targets=(target,), **common)
        apart.update({(r["image"], r["method"], r["target"]): r for r in read_records(out)})
    together = {(r["image"], r["method"], r["target"]): r for r in read_records(both)}
    assert together.keys() == apart.keys() and len(together) == 48
    # the two routes' maps agree to float rounding (test_shared_image); a rounding difference can swap
    # pixels of nearly equal rank, which moves a checkpoint's probability by a little, rarely. How far
    # depends on the CPU's float kernels: measured 16 of 1056 points, at most 0.005, on one machine;
    # 6 of 1056, at most 0.027, on another (2026-12-06)
    gaps = np.concatenate([np.abs(np.subtract(record[c], apart[key][c]))
                           for key, record in together.items() for c in ("deletion_prob", "insertion_prob")])
    assert (gaps < 1e-4).mean() > 0.98 and gaps.max() < 0.05


def test_explain_targets_gives_each_targets_maps(shapes_folder):
    from gradeclip_lib.evaluation import explain_batch
    from gradeclip_lib.evaluation.protocol import explain_targets

    clip = gl.load_clip("shapes")
    images = [as_uint8(Image.open(p).convert("RGB")) for p in sorted(shapes_folder.glob("*/*.png"))[:5]]
    batch = Batch.build(images, [torch.zeros_like(i) for i in images], [0] * 5, clip.device)
    texts = [clip.encode_text([f"a {c} circle" for c in ("red", "green", "blue", "yellow", "white")]),
             clip.encode_text(["a blue star"] * 5)]
    both = explain_targets(clip, batch, texts, "grad_eclip")
    for target, maps in zip(texts, both):
        for a, b in zip(maps, explain_batch(clip, batch, target, "grad_eclip", shared=False)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * float(b.abs().max()))


def test_summary_table_columns_follow_the_chosen_metrics():
    from gradeclip_lib.evaluation import summary_table

    records = [{"image": i, "method": "m", "target": "gt", "causal_deletion": [0.5] * 9,
                "causal_insertion": [0.5] * 9,
                **{f"{mode}_{w}": [0.5] * 11 for mode in ("deletion", "insertion") for w in ("prob", "top1", "top5")}}
               for i in "xy"]
    full = summary_table(summary(records)).columns
    assert full[3:] == ["deletion top-1 ↓", "insertion top-1 ↑", "deletion prob ↓", "insertion prob ↑",
                        "RISE deletion ↓", "RISE insertion ↑", "pixels for 90\u00a0% ↓", "reach 90\u00a0%"]
    narrow = summary_table(summary(records), metrics=("prob", "causal")).columns
    assert narrow[3:] == ["deletion prob ↓", "insertion prob ↑", "RISE deletion ↓", "RISE insertion ↑"]
    without = [{k: v for k, v in r.items() if not k.startswith("causal")} for r in records]
    assert "RISE deletion ↓" not in summary_table(summary(without)).columns  # not measured: not shown


def test_the_progress_bar_counts_images_per_second_even_below_one():
    from tqdm import tqdm

    from gradeclip_lib.evaluation import run

    slow = tqdm.format_meter(n=1, total=3, elapsed=2.0, unit="img", bar_format=run.IMAGES_PER_SECOND)
    assert "0.50img/s" in slow and "s/img" not in slow.replace("img/s", "")
    assert "2.00s/img" in tqdm.format_meter(n=1, total=3, elapsed=2.0, unit="img")  # tqdm's default inverts it
