"""The command line, run in-process as a user would run it."""

from __future__ import annotations

import pytest
from PIL import Image

from gradeclip_lib.bench import BenchResult, report
from gradeclip_lib.cli import main


def test_explain_writes_an_overlay_at_the_image_size(images, tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    images[2].save(src)
    code = main(["explain", str(src), "a red circle", "--model", "ViT-B-32-quickgelu", "--random-weights",
                 "--out", str(out)])
    assert code == 0
    assert Image.open(out).size == images[2].size
    printed = capsys.readouterr().out
    assert "random weights" in printed and "cos(image, 'a red circle')" in printed


def test_explain_takes_resnet_clips_classifiers_and_blip(images, tmp_path, capsys, monkeypatch):
    from gradeclip_lib.blip import loading
    from gradeclip_lib.synthetic import make_scenes

    src = tmp_path / "in.png"
    images[2].save(src)
    assert main(["explain", str(src), "a red circle", "--model", "RN50", "--random-weights"]) == 0
    assert "cos(image, 'a red circle')" in capsys.readouterr().out
    scene = make_scenes(1, seed=5, n_objects=1)[0]
    scene.image.save(src)
    name = scene.objects[0].phrase.removeprefix("a ")  # the classifier's classes: "red circle", ...
    assert main(["explain", str(src), name, "--classifier", "shapes"]) == 0
    assert f"logit of '{name}'" in capsys.readouterr().out
    assert main(["explain", str(src), "a dog", "--classifier", "shapes"]) == 2
    assert "not a class of shapes-classifier" in capsys.readouterr().err
    monkeypatch.setattr(loading, "hub_reachable", lambda: False)
    monkeypatch.setattr(loading, "_cached", lambda name: False)
    assert main(["explain", str(src), "a cat", "--blip", "Salesforce/blip-itm-base-coco"]) == 2
    assert "no weights for Salesforce/blip-itm-base-coco" in capsys.readouterr().err
    assert main(["explain", str(src), "a cat", "--blip", "x", "--random-weights"]) == 2


def test_explain_takes_siglip2_and_eva02_by_their_open_clip_names(images, tmp_path, capsys, monkeypatch):
    from gradeclip_lib.models import loading

    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    src = tmp_path / "in.png"
    images[2].save(src)
    assert main(["explain", str(src), "a dog", "--model", "EVA02-B-16", "--random-weights", "--method", "legrad"]) == 0
    assert "EVA02-B-16" in capsys.readouterr().out
    assert main(["explain", str(src), "a dog", "--model", "ViT-B-16-SigLIP2", "--random-weights"]) == 2
    assert "tokenizer of ViT-B-16-SigLIP2 comes from the Hugging Face hub" in capsys.readouterr().err
    assert main(["explain", str(src), "a dog", "--model", "ViT-B-16-SigLIP2"]) == 2  # no "openai" weights
    assert "pretrained='webli'" in capsys.readouterr().err


def test_explain_offline_says_what_to_do(images, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    src = tmp_path / "in.png"
    images[0].save(src)
    assert main(["explain", str(src), "a cat", "--model", "ViT-B-32-quickgelu:openai"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no weights for ViT-B-32-quickgelu:openai") and "pretrained=None" in err


def test_every_verb_has_help(capsys):
    for verb in ("explain", "evaluate", "prepare-imagenet", "bench", "model-check"):
        with pytest.raises(SystemExit) as exit_:
            main([verb, "--help"])
        assert exit_.value.code == 0
        assert "usage: python -m gradeclip_lib " + verb in capsys.readouterr().out


def test_bench_report_gives_the_batched_over_sequential_ratio():
    rows = [BenchResult("grad_eclip forward, batched", "cpu", "fp32", 8, 8, 2.0),
            BenchResult("grad_eclip forward, one at a time", "cpu", "fp32", 8, 8, 5.0),
            BenchResult("encode_image, forward only", "cpu", "fp32", 8, 8, 1.0)]
    text = report(rows)
    assert "250.0" in text and "625.0" in text and "2.50x" in text  # ms per map, ratio
    assert "forward-only images (cpu, fp32, batch 8): 0.50" in text


def test_prompts_report_gives_prompts_per_second_and_forward_passes():
    from gradeclip_lib.bench import report_prompts

    rows = [{"what": "encode_image, forward only", "prompts": 0, "seconds": 0.2, "size": 224},
            {"what": "grad_eclip forward, shared", "prompts": 1000, "seconds": 0.3, "size": 224},
            {"what": "grad_eclip forward, per prompt", "prompts": 1000, "seconds": 60.0, "size": 224},
            {"what": "text grad_eclip forward, shared", "prompts": 1000, "seconds": 0.9, "size": 224},
            {"what": "text grad_eclip forward, shared", "prompts": 100, "seconds": 0.5, "size": 224},
            {"what": "text grad_eclip forward, per image", "prompts": 100, "seconds": 10.0, "size": 224}]
    text = report_prompts(rows)
    assert "forward pass of the image tower: 200 ms" in text
    assert "3.33e+03" in text and "1.5" in text  # prompts/s and forwards of the shared route
    assert "ratio shared / per prompt at 1000 prompts: 200.0x faster" in text
    assert "text: ratio shared / per image at 100 images: 20.0x faster" in text


def test_explain_mode_forward_and_its_older_name(images, tmp_path, capsys):
    src = tmp_path / "in.png"
    images[2].save(src)
    args = ["explain", str(src), "a red circle", "--model", "ViT-B-32-quickgelu", "--random-weights", "--mode"]
    assert main(args + ["forward"]) == 0
    forward = capsys.readouterr()
    assert main(args + ["faithful"]) == 0
    old = capsys.readouterr()
    assert "older name of --mode forward" in old.err and "older name" not in forward.err
    assert old.out == forward.out  # the same score and map shape
    with pytest.raises(SystemExit):
        main(args + ["faithfull"])


@pytest.mark.parametrize("name, magic", [("o.svg", b"<?xml"), ("o.pdf", b"%PDF"), ("o.jpg", b"\xff\xd8")])
def test_explain_out_follows_the_extension(images, tmp_path, name, magic):
    src, out = tmp_path / "in.png", tmp_path / name
    images[2].save(src)
    assert main(["explain", str(src), "a red circle", "--model", "ViT-B-32-quickgelu", "--random-weights",
                 "--out", str(out)]) == 0
    assert out.read_bytes().startswith(magic)
    if name.endswith(".jpg"):
        assert Image.open(out).size == images[2].size
    if name.endswith(".svg"):
        assert "a red circle" in out.read_text()  # the title is drawn (matplotlib names it in a comment)


def test_explain_refuses_an_unknown_extension_before_loading(tmp_path, capsys, monkeypatch):
    import gradeclip_lib.models as models

    monkeypatch.setattr(models, "load_clip", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(SystemExit) as exit_:
        main(["explain", "in.png", "a cat", "--out", str(tmp_path / "map.tiff")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "map.tiff" in err and ".png" in err and ".svg" in err and ".pdf" in err
    assert not (tmp_path / "map.tiff").exists()
