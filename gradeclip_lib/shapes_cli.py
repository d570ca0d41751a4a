"""``python -m gradeclip_lib shapes {train, evaluate, finetune, train-classifier, train-blip, export}``:
train the ShapesWorld CLIP, measure one, fine-tune it with Grad-ECLIP regions (and controls), train the
ShapesWorld ViT classifier or BLIP, or write scenes as an image folder for ``python -m gradeclip_lib evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .blip.loading import SHAPES_BLIP_DIR
from .classifiers.loading import SHAPES_CLASSIFIER_DIR
from .finetune.shapes import RESULTS_FILE, RUNS, FinetuneConfig, run_finetune
from .metrics import format_rate
from .models.loading import load_clip
from .models.shapes import DEFAULT_PRESET, PRESETS, SHAPES_DIR, TUNED_DIR, default_config
from .shapesworld.evaluate import binding_accuracy, image_size, localisation, zero_shot_accuracy
from .shapesworld.train_blip import train_shapes_blip
from .shapesworld.train_classifier import train_shapes_classifier
from .shapesworld.train_clip import PRECISIONS, TrainConfig, train
from .synthetic.folder import export_folder
from .training.steps import POSITIVES


def object_range(text: str) -> tuple[int, int]:
    """'1-4' -> (1, 4); '3' -> (3, 3)."""
    lo, _, hi = text.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a range like 1-4, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line's verbs and options; the training defaults are `TrainConfig`'s."""
    d = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m gradeclip_lib shapes", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("train", help="train a ShapesWorld CLIP and save it (weights, config, history)",
                         description="Train a ShapesWorld CLIP. The run is checkpointed at every evaluation; "
                                     "`train --resume DIR` continues an interrupted run with its own settings.")
    p.add_argument("--out", default=None, help=f"folder for the model (default {SHAPES_DIR})")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the interrupted run saved in DIR (from its last checkpoint, with its settings)")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop after this step, keeping the checkpoint for --resume (a run over two sessions)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--workers", type=int, default=None, help="processes rendering scenes (default: all cores)")
    recipe = p.add_argument_group("recipe (not with --resume)")
    recipe.add_argument("--preset", choices=list(PRESETS), default=None,
                        help=f"architecture (default {DEFAULT_PRESET}); see synthetic/model.py")
    recipe.add_argument("--steps", type=int, default=None, help=f"(default {d.steps})")
    recipe.add_argument("--batch-size", type=int, default=None, help=f"(default {d.batch_size})")
    recipe.add_argument("--scenes", type=int, default=None,
                        help=f"scenes rendered before training (default {d.scenes})")
    recipe.add_argument("--objects", type=object_range, default=None,
                        help=f"objects per training scene, e.g. 1-4 (default {d.n_objects[0]}-{d.n_objects[1]})")
    recipe.add_argument("--partial-captions", type=float, default=None,
                        help="share of multi-object scenes whose caption names only some objects "
                             f"(default {d.partial_captions})")
    recipe.add_argument("--positives", choices=POSITIVES, default=None,
                        help="a caption is right for every image holding its objects (subset) or only for exactly "
                             f"them (same; default {d.positives})")
    recipe.add_argument("--shuffle-captions", action="store_const", const=True, default=None,
                        help="pair each image with another image's caption (the data-randomisation control)")
    recipe.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {d.lr})")
    recipe.add_argument("--precision", choices=PRECISIONS, default=None,
                        help=f"autocast precision; weights stay fp32 (default {d.precision})")
    recipe.add_argument("--seed", type=int, default=None, help=f"(default {d.seed})")
    recipe.add_argument("--init-from", default=None, metavar="DIR",
                        help="a trained ShapesWorld CLIP whose image blocks and text tower start a SigLIP preset")
    recipe.add_argument("--eval-every", type=int, default=None,
                        help=f"steps between evaluations and checkpoints (default {d.eval_every})")
    e = verbs.add_parser("evaluate", help="zero-shot accuracy, binding and pointing game of a trained model")
    e.add_argument("--model-dir", default=str(SHAPES_DIR))
    e.add_argument("--n", type=int, default=300)
    f = verbs.add_parser("finetune", help="Grad-ECLIP-guided fine-tuning of the shipped model, with its controls",
                         description="Fine-tune the ShapesWorld model with a region-phrase loss whose regions come "
                                     "from Grad-ECLIP maps of the frozen model, and the same steps with the global "
                                     "loss only, true-mask regions, uniform regions and the frozen model's raw "
                                     "attention; "
                                     "measure each before and "
                                     "after. Finished runs are kept in the results file: the same command resumes.")
    f.add_argument("--runs", default=",".join(RUNS),
                   help="region sources to run, comma-separated (none = global loss only)")
    f.add_argument("--model-dir", default=str(SHAPES_DIR), help="the model to fine-tune")
    f.add_argument("--out", default=None, help="folder for the Grad-ECLIP-tuned model (default data/shapes-tuned)")
    f.add_argument("--results", default=None, help="JSON file of the measurements (default "
                                                   "data/results/finetune.json)")
    f.add_argument("--eval", type=int, default=500, metavar="N", help="held-out scenes per measurement")
    for option in ("steps", "batch-size", "scenes", "lr", "local-weight", "seed"):
        kind = float if option in ("lr", "local-weight") else int
        f.add_argument(f"--{option}", type=kind, default=None, help="(default: FinetuneConfig's)")
    c = verbs.add_parser("train-classifier", help="train the ShapesWorld ViT classifier (30 classes, timm)",
                         description="Train a supervised timm ViT on single-object scenes (30 classes), the model "
                                     "whose Grad-ECLIP maps chapter 'Beyond CLIP ViT' scores against true masks.")
    c.add_argument("--out", default=None, help="folder for the classifier (default data/shapes-classifier)")
    c.add_argument("--steps", type=int, default=4000)
    c.add_argument("--batch-size", type=int, default=128)
    c.add_argument("--scenes", type=int, default=60_000, help="single-object scenes rendered before training")
    c.add_argument("--seed", type=int, default=0)
    b = verbs.add_parser("train-blip", help="train the ShapesWorld BLIP (ITC + ITM, Hugging Face transformers)",
                         description="Train a small BlipForImageTextRetrieval on scenes of 1-3 objects with BLIP's "
                                     "contrastive (ITC) and matching (ITM, hard negatives) losses: the BLIP whose "
                                     "maps chapter 'Beyond CLIP ViT' scores against true masks. Resumable.")
    b.add_argument("--out", default=None, help="folder for the model (default data/shapes-blip)")
    b.add_argument("--steps", type=int, default=8000)
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--scenes", type=int, default=60_000, help="scenes rendered before training")
    b.add_argument("--partial-captions", type=float, default=0.5,
                   help="share of multi-object scenes captioned with only some of their objects")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--resume", action="store_true", help="continue the run killed in --out (its own settings)")
    x = verbs.add_parser("export", help="write scenes as DIR/<colour>_<shape>/<i>.png for the evaluate command")
    x.add_argument("out", help="folder to create")
    x.add_argument("--n", type=int, default=300)
    x.add_argument("--seed", type=int, default=40_000)
    x.add_argument("--objects", type=int, default=1, help="objects per scene; the class is the first one")
    x.add_argument("--model-dir", default=str(SHAPES_DIR), help="the scenes take this model's image size")
    return parser


RECIPE_OPTIONS = {"steps": "steps", "batch_size": "batch_size", "scenes": "scenes", "lr": "lr",
                  "objects": "n_objects", "partial_captions": "partial_captions", "positives": "positives",
                  "shuffle_captions": "shuffle_captions", "precision": "precision", "seed": "seed",
                  "eval_every": "eval_every", "init_from": "init_from"}  # option -> TrainConfig


def train_config(args: argparse.Namespace):
    """The `TrainConfig` of parsed ``train`` arguments (`TrainConfig`'s defaults for those not given)."""
    given = {field: getattr(args, option) for option, field in RECIPE_OPTIONS.items()
             if getattr(args, option) is not None}
    return TrainConfig(**given, model=default_config(args.preset or DEFAULT_PRESET))


def given_recipe_options(args: argparse.Namespace) -> list[str]:
    """The recipe options set on the command line, as ``--flag`` names."""
    names = [*RECIPE_OPTIONS, "preset"]
    return ["--" + name.replace("_", "-") for name in names if getattr(args, name) is not None]


def finetune_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run `run_finetune` from parsed ``finetune`` arguments and print the before/after table."""
    runs = tuple(r.strip() for r in args.runs.split(",") if r.strip())
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        parser.error(f"--runs: unknown {', '.join(unknown)}; choose among {', '.join(RUNS)}")
    given = {k: getattr(args, k) for k in ("steps", "batch_size", "scenes", "lr", "local_weight", "seed")
             if getattr(args, k) is not None}
    cfg = FinetuneConfig(**{**asdict(FinetuneConfig()), **given})
    record = run_finetune(cfg, runs, base_folder=args.model_dir, results=args.results or RESULTS_FILE,
                          tuned_dir=args.out or TUNED_DIR, n_eval=args.eval)
    rows = {"before": record["before"], **{k: v["checks"] for k, v in record["runs"].items()}}
    names = list(record["before"])
    print(f"{'':12}" + "".join(f"{n:>21}" for n in names))
    for label, checks in rows.items():
        print(f"{label:12}" + "".join(f"{checks[n][0]:7.3f} [{checks[n][1]:.2f}, {checks[n][2]:.2f}]" for n in names))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.verb == "export":
        size = image_size(load_clip("shapes", pretrained=args.model_dir))
        export_folder(args.out, args.n, seed=args.seed, n_objects=args.objects, size=size)
        print(f"{args.n} scenes of {size} px written to {args.out}")
        return 0

    if args.verb == "train-classifier":
        out = args.out or SHAPES_CLASSIFIER_DIR
        classifier = train_shapes_classifier(out, steps=args.steps, batch_size=args.batch_size, scenes=args.scenes,
                                             seed=args.seed)
        history = json.loads((Path(out) / "history.json").read_text())
        print(f"{classifier}: held-out accuracy {format_rate(*history['accuracy'])}, trained in "
              f"{history['train_seconds']:.0f} s; saved to {out}")
        return 0

    if args.verb == "train-blip":
        out = args.out or SHAPES_BLIP_DIR
        try:
            blip = train_shapes_blip(out, steps=args.steps, batch_size=args.batch_size, scenes=args.scenes,
                                     partial_captions=args.partial_captions, seed=args.seed, resume=args.resume)
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        history = json.loads((Path(out) / "history.json").read_text())
        print(f"{blip}: zero-shot accuracy ITC {format_rate(*history['itc_accuracy'])}, ITM "
              f"{format_rate(*history['itm_accuracy'])}, trained in {history['train_seconds']:.0f} s; saved to {out}")
        return 0

    if args.verb == "finetune":
        return finetune_command(args, parser)

    if args.verb == "train":
        if args.resume:
            if given_recipe_options(args) or args.out:
                parser.error(f"--resume continues the run in {args.resume} with its own settings; drop "
                             f"{', '.join(given_recipe_options(args) + (['--out'] if args.out else []))}")
            out, cfg = args.resume, None
        else:
            out, cfg = args.out or str(SHAPES_DIR), train_config(args)
        try:
            history = train(cfg, out=out, device=args.device, workers=args.workers, resume=bool(args.resume),
                            stop_at=args.stop_at)
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        accuracy = (f"zero-shot accuracy {history['zero_shot'][-1]:.3f}, binding {history['binding'][-1]:.3f}; "
                    if history["zero_shot"] else "")
        stopped = args.stop_at is not None and args.stop_at < history["config"]["steps"]
        print(f"rendered in {history['render_seconds']:.0f} s, trained in {history['train_seconds']:.0f} s; "
              f"{accuracy}saved to {out}" + (f"; stopped at step {args.stop_at}: continue with --resume {out}"
                                              if stopped else ""))
        return 0
    clip = load_clip("shapes", pretrained=args.model_dir)
    report = {"zero_shot": zero_shot_accuracy(clip, args.n), "binding": binding_accuracy(clip, args.n)}
    runs = (("grad_eclip", {}), ("grad_eclip_paper", {"mode": "paper"}), ("self_attention", {}), ("random", {}))
    for name, options in runs:
        method = "grad_eclip" if name.startswith("grad_eclip") else name
        loc = localisation(clip, method, n_objects=4, n=args.n, **options)
        report[f"pointing_4obj_{name}"] = float(loc["pointing"].float().mean())
        report[f"energy_4obj_{name}"] = float(loc["energy"].mean())
    print(json.dumps(report, indent=1))
    return 0
