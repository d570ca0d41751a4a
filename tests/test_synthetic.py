"""ShapesWorld: the generator's promises, the tokenizer, the model plumbing and a short training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradeclip_lib as gl
from gradeclip_lib.models.shapes import build_model, default_config, load_shapes_clip, save, wrap
from gradeclip_lib.shapesworld.train_clip import TrainConfig, contrastive_loss, train
from gradeclip_lib.synthetic import COLOURS, SHAPES, WordTokenizer, make_scenes
from gradeclip_lib.synthetic.scenes import shape_mask


def test_deterministic_per_seed_and_index():
    a = make_scenes(6, seed=3)
    b = make_scenes(6, seed=3)
    for x, y in zip(a, b):
        assert x.caption == y.caption
        assert np.array_equal(np.asarray(x.image), np.asarray(y.image))
    tail = make_scenes(2, seed=3, start=4)  # scene i does not depend on how many are asked for
    assert tail[0].caption == a[4].caption and np.array_equal(np.asarray(tail[1].image), np.asarray(a[5].image))
    assert make_scenes(1, seed=4)[0].caption != a[0].caption or not np.array_equal(
        np.asarray(make_scenes(1, seed=4)[0].image), np.asarray(a[0].image))


@pytest.mark.parametrize("count", [1, 3, 5])
def test_objects_are_distinct_and_masks_match_the_drawn_pixels(count):
    for scene in make_scenes(20, seed=count, n_objects=count):
        assert len(scene.objects) == count
        assert len({o.colour for o in scene.objects}) == count and len({o.shape for o in scene.objects}) == count
        pixels = np.asarray(scene.image).astype(float)
        union = np.zeros(pixels.shape[:2], dtype=bool)
        for obj in scene.objects:
            assert obj.mask.sum() > 30
            assert not (union & obj.mask).any()  # no overlap
            union |= obj.mask
            colour = np.asarray(COLOURS[obj.colour], float)
            inside = pixels[obj.mask]
            assert np.abs(inside.mean(0) / colour.clip(1) - inside.mean(0).mean() / colour.mean()).max() < 0.2
            assert np.linalg.norm(inside - inside.mean(0), axis=1).mean() < 20  # flat colour, light grain
        background = pixels[~union]
        assert np.abs(background - background.mean(0)).mean() > 5  # textured, not flat


def test_captions_name_every_object_once():
    for scene in make_scenes(50, seed=1, n_objects=(1, 4)):
        for obj in scene.objects:
            assert scene.caption.count(obj.phrase) == 1
        assert scene.caption.count(" and ") == len(scene.objects) - 1


def test_shape_masks_are_told_apart():
    masks = {s: shape_mask(s, 64, 32, 32, 20, 0.0) for s in SHAPES}
    areas = {s: int(m.sum()) for s, m in masks.items()}
    circle = np.pi * 20**2
    triangle = 3 * 3**0.5 / 4 * 20**2  # equilateral, circumradius 20
    assert abs(areas["circle"] - circle) / circle < 0.05
    assert abs(areas["triangle"] - triangle) / triangle < 0.05
    assert areas["triangle"] < areas["star"] < areas["cross"] < areas["square"] < areas["circle"]
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert (masks[a] ^ masks[b]).sum() > 50


def test_too_many_objects_is_refused():
    with pytest.raises(ValueError, match="1..5"):
        make_scenes(1, n_objects=6)


def test_word_tokenizer_follows_clip_conventions():
    tok = WordTokenizer()
    ids = tok(["a red circle and a blue star", "a purple star"])
    assert ids.shape == (2, 32)
    assert int(ids[0, 0]) == tok.sot_token_id and int(ids[0].argmax()) == 8  # end token has the largest id
    assert tok.decode(ids[0, 1:8].tolist()) == "a red circle and a blue star"
    lenient = WordTokenizer(unknown="unk")  # the default refuses unknown words (test_models_and_inputs)
    assert lenient.decode(lenient.encode("a purple zebra")) == "a purple <unk>"


def test_shapes_model_runs_every_part_of_the_library():
    clip = gl.load_clip("shapes", pretrained=None)
    scenes = make_scenes(3, seed=0, n_objects=3)
    exp = gl.explain(clip, [s.image for s in scenes], [s.objects[0].phrase for s in scenes])
    assert tuple(exp.maps.shape) == (3, 12, 12)
    words = gl.explain_text(clip, scenes[0].image, scenes[0].caption)
    assert " ".join(words.tokens) == scenes[0].caption.lower()


def test_save_and_load_round_trip(tmp_path):
    cfg = default_config()
    model = build_model(cfg)
    save(model, cfg, tmp_path)
    clip = load_shapes_clip(tmp_path)
    image = make_scenes(1, seed=5)[0].image
    reference = wrap(model, cfg).encode_image(image)
    assert torch.nn.functional.cosine_similarity(clip.encode_image(image), reference).item() > 0.999
    assert (tmp_path / "model.safetensors").stat().st_size < 6e6


def test_missing_model_says_how_to_train_it(tmp_path):
    with pytest.raises(gl.WeightsUnavailableError, match="python -m gradeclip_lib shapes train"):
        gl.load_clip("shapes", pretrained=str(tmp_path))


def test_contrastive_loss_counts_every_true_caption_as_a_positive():
    img, txt, scale = torch.eye(3), torch.eye(3), torch.tensor(10.0)
    apart = contrastive_loss(img, txt, torch.tensor([1, 2, 4]), torch.tensor([1, 2, 4]), scale)
    # image 0 now shows objects 1 and 2: caption 1 (object 2 alone) is true of it too
    shared = contrastive_loss(img, txt, torch.tensor([3, 2, 4]), torch.tensor([1, 2, 4]), scale)
    assert shared > apart  # image 0 wants caption 1 as well, which the identity embeddings do not give
    # the loss is lowest when the embedding puts image 0 between its two true captions
    between = torch.tensor([[1.0, 1.0, 0.0], [0, 1, 0], [0, 0, 1]])
    assert contrastive_loss(between, txt, torch.tensor([3, 2, 4]), torch.tensor([1, 2, 4]), scale) < shared


def test_sigmoid_loss_is_open_clips_siglip_loss_with_every_true_caption_a_positive():
    from open_clip.loss import SigLipLoss

    from gradeclip_lib.training.steps import sigmoid_loss

    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    scale, bias = torch.tensor(10.0), torch.tensor(-10.0)
    apart = torch.tensor([1, 2, 4, 8])  # four different scenes: the diagonal alone is positive
    theirs = SigLipLoss()(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), scale, bias)
    torch.testing.assert_close(sigmoid_loss(img, txt, apart, apart, scale, bias), theirs)
    # images 0 and 1 show the same objects: captions 0 and 1 are right for both (labels +1, not -1)
    same = torch.tensor([1, 1, 4, 8])
    labels = 2 * torch.eye(4) - 1
    labels[0, 1] = labels[1, 0] = 1
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T + bias
    expected = -F.logsigmoid(labels * logits).sum() / 4
    torch.testing.assert_close(sigmoid_loss(img, txt, same, same, scale, bias), expected)
    assert not torch.allclose(expected, theirs)


def test_partial_captions_name_a_subset_of_the_objects():
    from gradeclip_lib.synthetic.data import object_bits, render_scenes

    data = render_scenes(40, seed=3, n_objects=(3, 3), size=32, workers=1, progress=False, partial_captions=1.0)
    scenes = make_scenes(40, seed=3, n_objects=(3, 3), size=32)
    tok = WordTokenizer()
    for scene, ids, image_set, caption_set in zip(scenes, data.ids, data.image_sets, data.caption_sets):
        assert int(image_set) == object_bits(scene.objects)
        named = [o for o in scene.objects if int(caption_set) >> (5 * list(COLOURS).index(o.colour)
                                                                  + list(SHAPES).index(o.shape)) & 1]
        assert 1 <= len(named) < 3  # a proper subset, and its bits are objects of the scene
        words = [tok.words[i] for i in ids.tolist()]
        assert {f"{o.colour} {o.shape}" for o in named} == {
            f"{words[k]} {words[k + 1]}" for k in range(len(words) - 1) if words[k + 1] in SHAPES}
    full = render_scenes(40, seed=3, n_objects=(3, 3), size=32, workers=1, progress=False)
    assert torch.equal(full.images, data.images) and torch.equal(full.image_sets, full.caption_sets)


def test_a_short_training_run_lowers_the_loss(tmp_path):
    cfg = TrainConfig(steps=80, batch_size=64, scenes=600, lr=1e-3, n_objects=(1, 1), eval_every=0,
                      model={"embed_dim": 32, "quick_gelu": False,
                             "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2,
                                            "head_width": 32},
                             "text_cfg": {"context_length": 32, "vocab_size": len(WordTokenizer()), "width": 32,
                                          "heads": 2, "layers": 2}})
    history = train(cfg, out=tmp_path, device="cpu", workers=1, progress=False)
    assert history["loss"][-1] < history["loss"][0] - 0.3
    assert (tmp_path / "history.json").exists() and (tmp_path / "model.safetensors").exists()


def test_localisation_table_rows():
    from gradeclip_lib.shapesworld.evaluate import localisation_table

    clip = gl.load_clip("shapes", pretrained=None)
    methods = {"G": {"method": "grad_eclip"}, "R": {"method": "random", "seed": 3}}
    rows = localisation_table(clip, methods, counts=(1, 2), n=4)
    assert [(r["objects"], r["method"]) for r in rows] == [(1, "G"), (1, "R"), (2, "G"), (2, "R")]
    for r in rows:
        assert 0 <= r["pointing"] <= 1 and 0 <= r["energy"] <= 1 and len(r["hits"]) == 4
        assert len(r["energy_per_scene"]) == 4 and abs(float(r["energy_per_scene"].mean()) - r["energy"]) < 1e-6


@pytest.mark.parametrize("which", ["shipped", "siglip", "defaults", "shuffled"])
def test_train_command_reproduces_the_config_of_a_run(which):
    import json
    from dataclasses import asdict

    from gradeclip_lib.models.shapes import SHAPES_DIR, SIGLIP_DIR
    from gradeclip_lib.shapes_cli import build_parser, train_config
    from gradeclip_lib.shapesworld.train_clip import train_command

    if which in ("shipped", "siglip"):  # the histories written with the models in data/shapes, data/shapes-siglip
        folder = SHAPES_DIR if which == "shipped" else SIGLIP_DIR
        config = json.loads((folder / "history.json").read_text())["config"]
    else:
        cfg = TrainConfig(steps=123, partial_captions=0.25, n_objects=(2, 3), shuffle_captions=which == "shuffled")
        config = json.loads(json.dumps(asdict(cfg)))
    command = train_command(config)
    assert command.startswith("python -m gradeclip_lib shapes train ")
    parsed = asdict(train_config(build_parser().parse_args(command.split()[4:])))
    expected = {"partial_captions": 0.0, "positives": "same", "precision": "fp32", "shuffle_captions": False,
                "init_from": None, **config}  # older histories
    expected.pop("device", None)
    assert json.loads(json.dumps(parsed)) == expected


def test_shuffled_captions_pair_each_image_with_another_caption_and_follow_it():
    from gradeclip_lib.shapesworld.train_clip import shuffled_captions
    from gradeclip_lib.synthetic.data import render_scenes

    data = render_scenes(40, seed=5, n_objects=(1, 2), size=32, workers=1, progress=False)
    shuffled = shuffled_captions(data, seed=0)
    assert torch.equal(shuffled.images, data.images)  # the images stay in place
    rows = {tuple(r) for r in data.ids.tolist()}
    assert {tuple(r) for r in shuffled.ids.tolist()} == rows  # the same captions, moved
    moved = (shuffled.ids != data.ids).any(1)
    assert moved.float().mean() > 0.8
    assert torch.equal(shuffled.image_sets, shuffled.caption_sets)  # the target follows the new caption
    assert torch.equal(shuffled_captions(data, seed=0).ids, shuffled.ids)  # seeded
