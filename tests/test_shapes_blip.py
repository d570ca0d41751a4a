"""The ShapesWorld BLIP: BLIP's hard negatives, its ITM score path, training that resumes to the same
weights, and the shipped model (loads offline, knows the 30 objects through both heads)."""

from __future__ import annotations

import pytest
import torch
from test_blip import tiny_blip

import gradeclip_lib as gl
from gradeclip_lib.errors import WeightsUnavailableError
from gradeclip_lib.shapesworld import train_blip as shapes
from gradeclip_lib.synthetic.data import render_scenes


def test_hard_negatives_name_an_object_the_image_lacks_and_follow_the_similarity():
    images = torch.tensor([0b011, 0b001, 0b010, 0b100, 0b110, 0b1000])  # objects as bits (`object_bits`)
    captions = torch.tensor([0b001, 0b001, 0b010, 0b100, 0b110, 0b1000])  # caption 0 names one of image 0's two
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        neg_text, neg_image = shapes.itm_pairs(torch.randn(6, 6), images, captions, gen)
        assert ((captions[neg_text] & ~images) != 0).all()  # each names something its image does not show
        assert ((captions & ~images[neg_image]) != 0).all()
    sim = torch.zeros(6, 6)
    sim[:, 1] = 50.0  # caption 1 ('object 1') is by far the most similar to every image
    sim[0, 3] = sim[1, 3] = 50.0  # images 0 and 1 show object 1: for them caption 3 instead
    neg_text, _ = shapes.itm_pairs(sim, images, captions, gen)
    assert neg_text.tolist() == [3, 3, 1, 1, 1, 1]


def test_itm_logits_are_the_models_own_match_logits():
    blip = tiny_blip(1)
    pixels = torch.randn(2, 3, 32, 32)
    tokens = blip.tokenizer(["a red circle", "a photo of a dog"], padding=True, return_tensors="pt")
    image = blip.model.vision_model(pixel_values=pixels).last_hidden_state
    own = blip.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=pixels)
    assert torch.allclose(shapes.itm_logits(blip, image, tokens.input_ids), own.itm_score[:, 1], atol=1e-5)


@pytest.fixture(scope="module")
def few_scenes():
    tokenizer = shapes.shapes_tokenizer()
    return render_scenes(64, seed=5, size=64, workers=1, progress=False,
                         tokenizer=lambda texts: tokenizer(texts, padding=True, return_tensors="pt").input_ids)


def test_training_killed_and_resumed_ends_with_the_weights_of_an_unbroken_run(tmp_path, few_scenes):
    recipe = {"steps": 4, "batch_size": 8, "scenes": 64, "eval_every": 2, "eval_scenes": 10, "progress": False,
              "data": few_scenes}
    whole = shapes.train_shapes_blip(tmp_path / "whole", **recipe)
    assert shapes.train_shapes_blip(tmp_path / "broken", **recipe, stop_at=2) is None
    assert (tmp_path / "broken" / "checkpoint.pt").is_file() and not (tmp_path / "broken" / "config.json").exists()
    resumed = shapes.train_shapes_blip(tmp_path / "broken", resume=True, progress=False, data=few_scenes)
    assert not (tmp_path / "broken" / "checkpoint.pt").exists()
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = shapes.shapes_blip_model().state_dict()
    assert not all(torch.equal(first[k], a[k]) for k in a)  # the four steps changed the weights
    assert whole.dtype == torch.float32 and whole.image_size == 64


def test_resuming_a_folder_without_a_run_says_how_to_start_one(tmp_path, capsys):
    from gradeclip_lib.shapes_cli import main

    assert main(["train-blip", "--out", str(tmp_path), "--resume"]) == 2
    assert "shapes train-blip --out" in capsys.readouterr().err


def test_the_shipped_blip_loads_offline_and_knows_the_objects_through_both_heads(tmp_path):
    blip = gl.load_blip("shapes-blip")
    assert blip.dtype == torch.float32 and blip.image_size == 64 and blip.mean == (0.5, 0.5, 0.5)
    for head in ("itc", "itm"):
        hits = shapes.zero_shot_hits(blip, head, n=100, seed=340_000)
        assert hits.float().mean() >= 0.9, head  # chance is 1/30
    with pytest.raises(WeightsUnavailableError, match="train-blip"):
        gl.load_blip("shapes-blip", pretrained=tmp_path / "missing")
