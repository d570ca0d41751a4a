"""ShapesWorld training: a run stopped or killed and resumed ends where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gradeclip_lib.shapes_cli import build_parser, train_config
from gradeclip_lib.shapesworld.train_clip import TrainConfig, train
from gradeclip_lib.synthetic.tokenizer import WordTokenizer, vocabulary
from gradeclip_lib.training.checkpoint import CHECKPOINT, load_checkpoint

TINY = {"embed_dim": 32, "quick_gelu": False, "vocabulary": vocabulary(),
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
        "text_cfg": {"context_length": 32, "vocab_size": len(WordTokenizer()), "width": 32, "heads": 2, "layers": 2}}


def tiny_config(**overrides) -> TrainConfig:
    options = {"steps": 60, "batch_size": 32, "scenes": 300, "n_objects": (1, 2), "eval_every": 20, "model": TINY}
    return TrainConfig(**{**options, **overrides})


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return train(tiny_config(), out=out, workers=1, progress=False), out


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path, precision, uninterrupted):
    if precision == "bf16":
        full, _ = uninterrupted
    else:
        full = train(tiny_config(precision="fp32"), out=tmp_path / "full", workers=1, progress=False)
    # stop between two evaluations: the steps after the last checkpoint (41-50) are done again
    part = train(tiny_config(precision=precision), out=tmp_path / "run", workers=1, progress=False, stop_at=50)
    assert part["eval_step"] == [20, 40] and (tmp_path / "run" / CHECKPOINT).exists()
    assert load_checkpoint(tmp_path / "run")["step"] == 40
    resumed = train(None, out=tmp_path / "run", workers=1, progress=False, resume=True)
    assert same_weights(resumed["model"], full["model"])  # bitwise: same data order, same optimiser state
    assert resumed["loss"] == full["loss"] and resumed["zero_shot"] == full["zero_shot"]
    assert resumed["resumed_at"] == [40]
    assert not (tmp_path / "run" / CHECKPOINT).exists()  # a finished run keeps only the model and history


def test_a_siglip_started_from_a_clip_copies_it_once_and_resumes_to_the_same_weights(tmp_path, uninterrupted):
    import math

    from gradeclip_lib.models.shapes import load_shapes_clip

    _, clip_dir = uninterrupted  # a finished tiny CLIP: its blocks and text tower start the SigLIP
    siglip = {**TINY, "embed_dim": 64, "init_logit_scale": math.log(10), "init_logit_bias": -10.0,
              "vision_cfg": {"timm_kind": "siglip", "image_size": 32, "patch_size": 8, "width": 64, "layers": 2,
                             "heads": 2}}
    cfg = tiny_config(model=siglip, init_from=str(clip_dir), steps=30, eval_every=10, precision="fp32")
    start = train(cfg, workers=1, progress=False, stop_at=0)["model"].state_dict()
    clip = load_shapes_clip(clip_dir).model.state_dict()
    assert torch.equal(start["visual.trunk.blocks.1.attn.qkv.weight"],
                       clip["visual.transformer.resblocks.1.attn.in_proj_weight"])
    assert torch.equal(start["token_embedding.weight"], clip["token_embedding.weight"])
    full = train(cfg, out=tmp_path / "full", workers=1, progress=False)
    train(cfg, out=tmp_path / "run", workers=1, progress=False, stop_at=15)
    resumed = train(None, out=tmp_path / "run", workers=1, progress=False, resume=True)  # from the checkpoint
    assert same_weights(resumed["model"], full["model"]) and resumed["resumed_at"] == [10]


def test_a_finished_run_cannot_be_resumed_and_says_so(uninterrupted):
    _, out = uninterrupted
    with pytest.raises(FileNotFoundError, match="has finished"):
        train(None, out=out, resume=True)


def test_a_run_killed_before_its_checkpoint_is_not_called_finished(tmp_path):
    """A history that stops short of its last step, with no checkpoint beside it, is an interrupted run."""
    (tmp_path / "history.json").write_text(json.dumps({"eval_step": [20], "config": {"steps": 60}}))
    with pytest.raises(FileNotFoundError) as error:
        load_checkpoint(tmp_path)
    assert "has finished" not in str(error.value) and "train --out" in str(error.value)


def test_resume_refuses_another_config(tmp_path):
    train(tiny_config(), out=tmp_path, workers=1, progress=False, stop_at=20)
    with pytest.raises(ValueError, match="another config"):
        train(tiny_config(lr=5e-3), out=tmp_path, workers=1, progress=False, resume=True)


def test_cli_resume_takes_no_recipe_options(tmp_path, capsys):
    from gradeclip_lib.shapes_cli import main

    with pytest.raises(SystemExit):
        main(["train", "--resume", str(tmp_path), "--steps", "10"])
    assert "drop --steps" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2  # nothing to resume: an error, not a new run
    assert "no training checkpoint" in capsys.readouterr().err


def test_cli_options_not_given_take_the_config_defaults():
    args = build_parser().parse_args(["train", "--steps", "7", "--objects", "2-3"])
    cfg = train_config(args)
    assert (cfg.steps, cfg.n_objects) == (7, (2, 3))
    assert (cfg.batch_size, cfg.lr, cfg.precision) == (TrainConfig().batch_size, TrainConfig().lr, "bf16")


def test_old_histories_read_as_fp32_exact_set_runs():
    cfg = TrainConfig.from_dict({"steps": 5, "n_objects": [1, 3], "model": TINY, "device": "cpu"})
    assert (cfg.precision, cfg.positives, cfg.partial_captions, cfg.n_objects) == ("fp32", "same", 0.0, (1, 3))


SCRIPT = """
import sys
from gradeclip_lib.shapesworld.train_clip import train
sys.path.insert(0, {tests!r})
from test_shapes_training import tiny_config
train(tiny_config(steps={steps}, eval_every=50), out={out!r}, workers=1, progress=False, resume={resume})
"""


def run_script(out, steps: int, resume: bool) -> subprocess.Popen:
    code = SCRIPT.format(tests=os.path.dirname(__file__), steps=steps, out=str(out), resume=resume)
    log = open(f"{out}.log", "a")  # noqa: SIM115 (kept open for the child)
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log)


def test_a_killed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """SIGKILL at whatever point after the first checkpoint; the resumed run (from that checkpoint or a
    later one) must end bitwise where a run that was never interrupted ends."""
    from gradeclip_lib.models.shapes import load_shapes_clip

    steps = 300
    proc = run_script(tmp_path / "killed", steps, resume=False)
    history = tmp_path / "killed" / "history.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if json.loads(history.read_text())["eval_step"]:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = load_checkpoint(tmp_path / "killed")["step"]
    assert 50 <= saved < steps, "the run finished before it could be killed; give it more steps"
    assert run_script(tmp_path / "killed", steps, resume=True).wait() == 0
    assert run_script(tmp_path / "whole", steps, resume=False).wait() == 0
    a, b = load_shapes_clip(tmp_path / "killed"), load_shapes_clip(tmp_path / "whole")
    assert same_weights(a.model, b.model)
    assert json.loads((tmp_path / "killed" / "history.json").read_text())["loss"] == json.loads(
        (tmp_path / "whole" / "history.json").read_text())["loss"]
