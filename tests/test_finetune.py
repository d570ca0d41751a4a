"""Grad-ECLIP-guided fine-tuning: each piece against a direct computation, the run's controls and its
resumable results, and the shipped tuned model."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradeclip_lib as gl
from gradeclip_lib.finetune import (
    captioned,
    encode_with_dense,
    finetune_table,
    global_loss_against,
    mask_weights,
    plot_finetune,
    pool_regions,
    region_phrase_loss,
)
from gradeclip_lib.finetune import shapes as run
from gradeclip_lib.finetune.captioned import CaptionedConfig, batch_losses, caption_phrases, finetune_captioned
from gradeclip_lib.finetune.regions import map_weights
from gradeclip_lib.metrics import format_rate
from gradeclip_lib.models.shapes import SHAPES_DIR, TUNED_DIR


def test_one_pass_gives_the_embedding_and_maskclips_dense_features(tiny, images):
    pixels = tiny.crop(images[:2])
    embedding, dense = encode_with_dense(tiny.visual, pixels)
    assert torch.allclose(embedding, tiny.model.encode_image(pixels), atol=1e-5)
    text = tiny.encode_text(["a cat", "a dog"])
    maps = F.cosine_similarity(dense, text.unsqueeze(1), dim=-1)  # the MaskCLIP map, from our dense features
    reference = gl.explain(tiny, images[:2], ["a cat", "a dog"], method="mask_clip", preprocess="crop").maps
    assert torch.allclose(maps.reshape(reference.shape), reference, atol=1e-5)


def test_region_weights_and_pooling_against_loops():
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 2:7, 3:12] = True
    masks[1, 9:16, 0:4] = True
    weights = mask_weights(masks, patch=8)
    for o in range(2):
        for p in range(4):
            y, x = divmod(p, 2)
            share = masks[o, 8 * y : 8 * y + 8, 8 * x : 8 * x + 8].sum() / masks[o].sum()
            assert weights[o, p] == pytest.approx(float(share))
    maps = torch.tensor([[[0.0, 2.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert map_weights(maps).tolist() == [[0, 0.5, 0.25, 0.25], [0.25] * 4]  # an empty map: the whole image
    dense = torch.randn(3, 4, 5)
    image_of = torch.tensor([2, 0])
    pooled = pool_regions(dense, weights, image_of)
    for o in range(2):
        assert torch.allclose(pooled[o], sum(weights[o, p] * dense[image_of[o], p] for p in range(4)), atol=1e-6)


def test_region_phrase_loss_is_the_cross_entropy_of_scaled_cosines():
    regions, phrases = torch.randn(5, 8), torch.randn(3, 8)
    labels = torch.tensor([0, 2, 1, 1, 0])
    loss = region_phrase_loss(regions, phrases, labels, scale=10.0)
    by_hand = 0.0
    for r, label in zip(regions, labels):
        cos = torch.stack([F.cosine_similarity(r, p, dim=0) for p in phrases]) * 10
        by_hand += -(cos[label] - torch.logsumexp(cos, 0))
    assert float(loss) == pytest.approx(float(by_hand / 5), rel=1e-5)


@pytest.fixture(scope="module")
def small_data():
    base = gl.load_clip("shapes")
    return base, run.build_data(base, scenes=120, seed=3)


def test_data_rows_point_at_their_scenes_objects(small_data):
    base, data = small_data
    scenes = gl.synthetic.make_scenes(120, seed=100_003, n_objects=(1, 3), size=64)
    assert data.count.tolist() == [len(s.objects) for s in scenes]
    s = 7
    rows = range(int(data.first[s]), int(data.first[s] + data.count[s]))
    assert [run.PROMPTS[int(data.label[r])] for r in rows] == [o.phrase for o in scenes[s].objects]
    assert np.array_equal(data.images[s].permute(1, 2, 0).numpy(), np.asarray(scenes[s].image))
    ge = gl.explain(base, scenes[s].image, scenes[s].objects[0].phrase).maps[0].flatten()
    assert torch.allclose(data.weights["grad_eclip"][int(data.first[s])], ge / ge.sum(), atol=1e-5)
    assert torch.allclose(data.weights["masks"].sum(1), torch.ones(len(data.label)))
    # raw attention: the last block's class-token row, blind to the phrase (one map for all objects of a scene)
    attn = gl.explain(base, scenes[s].image, "a red circle", method="self_attention").maps[0].flatten()
    assert torch.allclose(data.weights["attention"][int(data.first[s])], attn / attn.sum(), atol=1e-5)
    assert all(torch.equal(data.weights["attention"][r], data.weights["attention"][int(data.first[s])]) for r in rows)


def test_mask_regions_teach_dense_features_and_leave_the_base_alone(small_data):
    base, data = small_data
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    hits_before = run.region_hits(base, n=60, seed=7)
    cfg = run.FinetuneConfig(regions="masks", steps=30, batch_size=32, lr=2e-4)
    tuned, history = run.finetune(base, cfg, data, progress=False)
    assert all(torch.equal(v, base.model.state_dict()[k]) for k, v in before.items())
    assert history["local"][-1] < history["local"][0]
    assert run.region_hits(tuned, n=60, seed=7).float().mean() > hits_before.float().mean() + 0.1
    _, plain = run.finetune(base, run.FinetuneConfig(regions="none", steps=10, batch_size=8), data, progress=False)
    assert plain["local"] == [0.0]


def test_the_run_keeps_finished_controls_and_restarts_for_another_recipe(tmp_path, monkeypatch):
    results, tuned = tmp_path / "finetune.json", tmp_path / "tuned"
    cfg = run.FinetuneConfig(steps=2, batch_size=4, scenes=12)
    record = run.run_finetune(cfg, ("grad_eclip", "none"), results=results, tuned_dir=tuned, n_eval=10,
                              progress=False)
    assert set(record["runs"]) == {"grad_eclip", "none"} and set(record["before"]) == {
        "region", "pointing_grad_eclip", "pointing_dense", "binding", "zero_shot"}
    assert json.loads(results.read_text()) == json.loads(json.dumps(record))
    loaded = gl.load_clip("shapes-tuned", pretrained=tuned)
    assert loaded.encode_image(gl.synthetic.make_scenes(1, size=64)[0].image).shape == (1, 96)

    table = finetune_table(record)
    assert [row[0] for row in table.cells] == ["before", "Grad-ECLIP", "global only"]
    assert table.cells[1][1] == format_rate(*record["runs"]["grad_eclip"]["checks"]["region"])
    ax = plot_finetune(record, metrics=("region", "zero_shot"))
    heights = sorted(round(p.get_height(), 9) for p in ax.patches)
    expected = [record["before"], record["runs"]["grad_eclip"]["checks"], record["runs"]["none"]["checks"]]
    assert heights == sorted(round(c[m][0], 9) for c in expected for m in ("region", "zero_shot"))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(run, "finetune", no_training)
    again = run.run_finetune(cfg, ("grad_eclip", "none"), results=results, tuned_dir=tuned, n_eval=10)
    assert again == record
    with pytest.raises(AssertionError, match="trained again"):  # another recipe: the old runs do not count
        run.run_finetune(run.FinetuneConfig(steps=3, batch_size=4, scenes=12), ("none",), results=results,
                         tuned_dir=None, n_eval=10)


def test_config_and_shipped_names_are_checked():
    with pytest.raises(ValueError, match="regions must be one of"):
        run.FinetuneConfig(regions="boxes")
    assert TUNED_DIR.parent == SHAPES_DIR.parent


def test_cli_rejects_an_unknown_run(capsys):
    from gradeclip_lib.shapes_cli import main

    with pytest.raises(SystemExit):
        main(["finetune", "--runs", "grad_eclip,boxes"])
    assert "unknown boxes" in capsys.readouterr().err


# ---------------------------------------------------------------- the real-data version, on a tiny random CLIP
def test_caption_phrases_takes_whole_words_longest_first():
    phrases = ["car", "red car", "cat", "dog"]
    assert caption_phrases("A red car next to a Cat and a catalogue", phrases) == ["red car", "cat"]
    assert caption_phrases("two dogs", phrases) == []


def test_batch_losses_against_a_direct_computation(tiny, images):
    model = copy.deepcopy(tiny.model).train().requires_grad_(True)
    captions = ["a red car", "a cat and a dog", "nothing to see"]
    phrases = [caption_phrases(c, ["red car", "cat", "dog"]) for c in captions]
    loss_global, loss_local = batch_losses(model, tiny, images, captions, phrases, scale=10.0)
    pixels = tiny.crop(images)
    img = F.normalize(model.encode_image(pixels), dim=-1)
    txt = F.normalize(model.encode_text(tiny.tokenize(captions)), dim=-1)
    logits = 10.0 * img @ txt.T
    expected = (F.cross_entropy(logits, torch.arange(3)) + F.cross_entropy(logits.T, torch.arange(3))) / 2
    assert loss_global.item() == pytest.approx(expected.item(), rel=1e-5)
    _, dense = encode_with_dense(model.visual, pixels)
    pairs = [(0, "red car"), (1, "cat"), (1, "dog")]
    names = sorted({p for _, p in pairs})
    phrase_emb = F.normalize(model.encode_text(tiny.tokenize(names)), dim=-1)
    total = 0.0
    for i, p in pairs:
        grad_map = gl.explain(tiny, images[i], p, preprocess="crop").maps[0].clamp(min=0).flatten()
        region = F.normalize((grad_map[:, None] / grad_map.sum() * dense[i]).sum(0), dim=0)
        logits = 10.0 * phrase_emb @ region
        total += -(logits[names.index(p)] - torch.logsumexp(logits, 0)).item()
    assert loss_local.item() == pytest.approx(total / 3, rel=1e-4)


def test_captioned_run_resumes_to_the_uninterrupted_weights(tiny, images, tmp_path, monkeypatch):
    captions = ["a red car", "a cat and a dog", "a dog"]
    phrases = ["red car", "cat", "dog"]
    cfg = CaptionedConfig(steps=4, batch_size=2, lr=1e-3, save_every=2)
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    whole, history = finetune_captioned(tiny, images, captions, phrases, cfg, out=tmp_path / "whole", progress=False)
    assert all(torch.equal(v, tiny.model.state_dict()[k]) for k, v in before.items())  # the frozen model
    assert not all(torch.equal(v, whole.model.state_dict()[k]) for k, v in before.items())
    calls = {"n": 0}
    real = captioned.batch_losses

    def killed_at_step_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(captioned, "batch_losses", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        finetune_captioned(tiny, images, captions, phrases, cfg, out=tmp_path / "run", progress=False)
    monkeypatch.setattr(captioned, "batch_losses", real)
    resumed, again = finetune_captioned(tiny, images, captions, phrases, cfg, out=tmp_path / "run", progress=False)
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in whole.model.state_dict().items())
    assert again["local"] == history["local"]
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in whole.model.state_dict().items())
    with pytest.raises(FileExistsError, match="finished run"):
        finetune_captioned(tiny, images, captions, phrases, cfg, out=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="no phrase"):
        finetune_captioned(tiny, images, captions, ["zebra"], cfg, progress=False)


def test_finetune_command_on_a_captioned_folder(tmp_path, capsys):
    from safetensors.torch import load_file

    from gradeclip_lib.cli import main
    from gradeclip_lib.shapesworld.evaluate import PROMPTS

    folder = tmp_path / "captioned"
    folder.mkdir()
    for i, scene in enumerate(gl.synthetic.make_scenes(6, seed=2, size=64)):
        scene.image.save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(scene.caption + "\n")
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("\n".join(p.removeprefix("a ") for p in PROMPTS))
    out = tmp_path / "tuned"
    args = ["finetune", "--captions", str(folder), "--phrases", str(phrases), "--model", "shapes", "--out", str(out),
            "--steps", "2", "--batch-size", "3", "--lr", "1e-3"]
    assert main(args) == 0
    assert "local loss" in capsys.readouterr().out
    tuned, base = load_file(out / "model.safetensors"), gl.load_clip("shapes").model.state_dict()
    assert tuned.keys() == base.keys() and not all(torch.equal(tuned[k], base[k]) for k in base)
    assert main(args) == 2 and "finished run" in capsys.readouterr().err
    assert main([*args[:2], str(tmp_path / "nowhere"), *args[3:]]) == 2


def test_global_loss_against_counts_the_steps_where_a_run_is_higher():
    def run(values):
        return {"history": {"global": values}}

    record = {"runs": {"none": run([1.0, 2.0, 4.0]), "grad_eclip": run([1.5, 1.0, 5.0])}}
    compared = global_loss_against(record)
    assert compared["none"] == {"higher": 0, "steps": 3, "mean_ratio": 1.0}
    assert compared["grad_eclip"]["higher"] == 2
    assert compared["grad_eclip"]["mean_ratio"] == pytest.approx((1.5 + 0.5 + 1.25) / 3)
    record["runs"]["uniform"] = run([1.0])
    with pytest.raises(ValueError, match="logged 1 steps"):
        global_loss_against(record)
