"""Command line: ``python -m gradeclip_lib {explain, bench, model-check} --help``."""

from __future__ import annotations

import argparse
import sys

from .errors import GradEclipError


def _explain(args: argparse.Namespace) -> int:
    from . import explain
    from .book import model_spec
    from .models import load_clip
    from .plotting import overlay, pil

    spec = args.model or model_spec()
    clip = load_clip(spec, pretrained=None) if args.random_weights else load_clip(spec, device=args.device)
    if not args.random_weights:
        clip.to(args.device)
    exp = explain(clip, args.image, args.text, method=args.method, mode=args.mode)
    print(f"{clip}\ncos(image, {args.text!r}) = {float(exp.scores[0]):.4f}; map {tuple(exp.maps[0].shape)}")
    if args.out:
        pil(overlay(args.image, exp.maps[0])).save(args.out)
        print(f"overlay written to {args.out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import run

    methods = args.methods.split(",") if args.methods else None
    run(devices=args.device, batch_cpu=args.batch_cpu, batch_gpu=args.batch_gpu, out=args.out, methods=methods)
    return 0


def _model_check(_args: argparse.Namespace) -> int:
    from .book import check

    check()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gradeclip_lib", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("explain", help="explain one image-text pair and save an overlay")
    p.add_argument("image", help="path of the image")
    p.add_argument("text", help="the text to explain the image against")
    p.add_argument("--method", default="grad_eclip", help="explanation method (default grad_eclip)")
    p.add_argument("--mode", default="faithful", choices=["faithful", "paper"])
    p.add_argument("--model", default=None, help="NAME[:TAG] (default $GRADECLIP_MODEL or the book's model)")
    p.add_argument("--random-weights", action="store_true", help="use the architecture with random weights")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="PNG file for the overlay")
    p.set_defaults(run=_explain)

    p = verbs.add_parser("bench", help="Grad-ECLIP throughput on this machine (ViT-B/16, random weights)")
    p.add_argument("--device", action="append", default=None, help="cpu, cuda (repeatable; default: all)")
    p.add_argument("--batch-cpu", type=int, default=8)
    p.add_argument("--batch-gpu", type=int, default=256)
    p.add_argument("--methods", default=None, help="also time these methods (comma-separated, or 'all')")
    p.add_argument("--out", default=None, help="also write the results as JSON")
    p.set_defaults(run=_bench)

    p = verbs.add_parser("model-check", help="say which model the book will use, and warn if random")
    p.set_defaults(run=_model_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except GradEclipError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
