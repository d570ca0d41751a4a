"""``python -m gradeclip_lib.synthetic {train, evaluate, export}``: train the ShapesWorld CLIP, measure
one, or write scenes as an image folder for ``python -m gradeclip_lib evaluate``."""

from __future__ import annotations

import argparse
import json
import sys

from .model import DEFAULT_PRESET, PRESETS, SHAPES_DIR


def object_range(text: str) -> tuple[int, int]:
    """'1-4' -> (1, 4); '3' -> (3, 3)."""
    lo, _, hi = text.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a range like 1-4, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line's verbs and options; the training defaults are `TrainConfig`'s."""
    from .train import POSITIVES, TrainConfig

    d = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m gradeclip_lib.synthetic", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("train", help="train a ShapesWorld CLIP and save it (weights, config, history)")
    p.add_argument("--out", default=str(SHAPES_DIR), help=f"folder for the model (default {SHAPES_DIR})")
    p.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET,
                   help=f"architecture (default {DEFAULT_PRESET}); see synthetic/model.py")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--scenes", type=int, default=d.scenes, help="scenes rendered before training")
    p.add_argument("--objects", type=object_range, default=d.n_objects,
                   help="objects per training scene, e.g. 1-4 (default %(default)s)")
    p.add_argument("--partial-captions", type=float, default=d.partial_captions,
                   help="share of multi-object scenes whose caption names only some objects (default %(default)s)")
    p.add_argument("--positives", choices=POSITIVES, default=d.positives,
                   help="a caption is right for every image holding its objects (subset) or only for exactly "
                        "them (same)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--workers", type=int, default=None, help="processes rendering scenes (default: all cores)")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    e = verbs.add_parser("evaluate", help="zero-shot accuracy, binding and pointing game of a trained model")
    e.add_argument("--model-dir", default=str(SHAPES_DIR))
    e.add_argument("--n", type=int, default=300)
    x = verbs.add_parser("export", help="write scenes as DIR/<colour>_<shape>/<i>.png for the evaluate command")
    x.add_argument("out", help="folder to create")
    x.add_argument("--n", type=int, default=300)
    x.add_argument("--seed", type=int, default=40_000)
    x.add_argument("--objects", type=int, default=1, help="objects per scene; the class is the first one")
    x.add_argument("--model-dir", default=str(SHAPES_DIR), help="the scenes take this model's image size")
    return parser


def train_config(args: argparse.Namespace):
    """The `TrainConfig` of parsed ``train`` arguments."""
    from .model import default_config
    from .train import TrainConfig

    return TrainConfig(steps=args.steps, batch_size=args.batch_size, scenes=args.scenes, lr=args.lr,
                       n_objects=args.objects, partial_captions=args.partial_captions, positives=args.positives,
                       seed=args.seed, eval_every=args.eval_every, model=default_config(args.preset))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.verb == "export":
        from ..models.loading import load_clip
        from .evaluate import image_size
        from .folder import export_folder

        size = image_size(load_clip("shapes", pretrained=args.model_dir))
        export_folder(args.out, args.n, seed=args.seed, n_objects=args.objects, size=size)
        print(f"{args.n} scenes of {size} px written to {args.out}")
        return 0

    if args.verb == "train":
        from .train import train

        cfg = train_config(args)
        history = train(cfg, out=args.out, device=args.device, workers=args.workers)
        accuracy = f"zero-shot accuracy {history['zero_shot'][-1]:.3f}; " if history["zero_shot"] else ""
        print(f"rendered in {history['render_seconds']:.0f} s, trained in {history['train_seconds']:.0f} s; "
              f"{accuracy}saved to {args.out}")
        return 0
    from ..models.loading import load_clip
    from .evaluate import binding_accuracy, localisation, zero_shot_accuracy

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


if __name__ == "__main__":
    sys.exit(main())
