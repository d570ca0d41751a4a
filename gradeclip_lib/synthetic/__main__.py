"""``python -m gradeclip_lib.synthetic {train, evaluate, export}``: train the ShapesWorld CLIP, measure
one, or write scenes as an image folder for ``python -m gradeclip_lib evaluate``."""

from __future__ import annotations

import argparse
import json
import sys

from .model import SHAPES_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradeclip_lib.synthetic", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("train", help="train a ShapesWorld CLIP and save it (weights, config, history)")
    p.add_argument("--out", default=str(SHAPES_DIR), help=f"folder for the model (default {SHAPES_DIR})")
    p.add_argument("--preset", choices=["gpu", "cpu"], default="gpu",
                   help="architecture: 'gpu' (96 px, the shipped recipe) or 'cpu' (64 px, smaller)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--scenes", type=int, default=120_000, help="scenes rendered before training")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--workers", type=int, default=None, help="processes rendering scenes (default: all cores)")
    p.add_argument("--eval-every", type=int, default=250)
    e = verbs.add_parser("evaluate", help="zero-shot accuracy, binding and pointing game of a trained model")
    e.add_argument("--model-dir", default=str(SHAPES_DIR))
    e.add_argument("--n", type=int, default=300)
    x = verbs.add_parser("export", help="write scenes as DIR/<colour>_<shape>/<i>.png for the evaluate command")
    x.add_argument("out", help="folder to create")
    x.add_argument("--n", type=int, default=300)
    x.add_argument("--seed", type=int, default=40_000)
    x.add_argument("--objects", type=int, default=1, help="objects per scene; the class is the first one")
    x.add_argument("--model-dir", default=str(SHAPES_DIR), help="the scenes take this model's image size")
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
        from .model import default_config
        from .train import TrainConfig, train

        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, scenes=args.scenes, lr=args.lr,
                          seed=args.seed, eval_every=args.eval_every, model=default_config(args.preset))
        history = train(cfg, out=args.out, device=args.device, workers=args.workers)
        print(f"rendered in {history['render_seconds']:.0f} s, trained in {history['train_seconds']:.0f} s; "
              f"zero-shot accuracy {history['zero_shot'][-1]:.3f}; saved to {args.out}")
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
