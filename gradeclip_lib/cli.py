"""Command line: ``python -m gradeclip_lib {explain, evaluate, word-weights, finetune, prepare-imagenet, bench,
model-check, grade} --help``."""

from __future__ import annotations

import argparse
import sys

from . import shapes_cli
from .errors import GradEclipError, UnsupportedModelError


def _explained_model(args: argparse.Namespace):
    """The model `explain` loads: an open_clip CLIP (ViT or ResNet), a timm classifier or a BLIP."""
    from .blip import load_blip
    from .book import model_spec
    from .classifiers import load_classifier
    from .models import load_clip

    if args.classifier:
        return load_classifier(args.classifier, pretrained=None if args.random_weights else True, device=args.device)
    if args.blip:
        if args.random_weights:
            raise UnsupportedModelError("--random-weights is not offered for BLIP: its tokenizer comes with it")
        return load_blip(args.blip, device=args.device)
    spec = args.model or model_spec()
    clip = load_clip(spec, pretrained=None) if args.random_weights else load_clip(spec, device=args.device)
    return clip.to(args.device)


SCORES = {"Clip": "cos(image, {text!r})", "Classifier": "logit of {text!r}", "Blip": "score of {text!r}"}


def _explain(args: argparse.Namespace) -> int:
    from . import explain
    from .export import RASTER, figure_format, save_figure
    from .plotting import overlay, show_map

    model = _explained_model(args)
    if args.mode == "faithful":
        print('--mode faithful is the older name of --mode forward; use "forward"', file=sys.stderr)
    options = {"mode": "forward" if args.mode == "faithful" else args.mode} if args.mode else {}
    exp = explain(model, args.image, args.text, method=args.method, **options)
    what = SCORES[type(model).__name__].format(text=args.text)
    print(f"{model}\n{what} = {float(exp.scores[0]):.4f} ({args.method}); map {tuple(exp.maps[0].shape)}")
    if args.out:
        if figure_format(args.out) in RASTER:  # the overlay pixel for pixel, at the image's size
            save_figure(overlay(args.image, exp.maps[0]), args.out, dpi=args.dpi)
        else:  # a vector page: the overlay with the text as its title
            save_figure(show_map(args.image, exp.maps[0], args.text), args.out, dpi=args.dpi)
        print(f"overlay written to {args.out}")
    return 0


def _figure_path(text: str) -> str:
    """argparse type of ``--out`` for figures: a wrong extension is a usage error, before any model loads."""
    from .export import figure_format

    try:
        figure_format(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _bench(args: argparse.Namespace) -> int:
    from .bench import run

    methods = args.methods.split(",") if args.methods else None
    run(devices=args.device, batch_cpu=args.batch_cpu, batch_gpu=args.batch_gpu, out=args.out, methods=methods,
        evaluation=args.evaluation, eval_images=args.eval_images, training=args.training, prompts=args.prompts,
        sizes=args.sizes, max_pixels=args.max_pixels, authors=args.authors)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import os

    import torch

    from .evaluation import evaluate_folder, format_summary, summary
    from .evaluation.run import distributed_context, parse_jobs
    from .models import load_clip

    try:  # check the methods and targets before loading a model
        parse_jobs(args.methods.split(","), args.targets.split(","))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rank, world = distributed_context()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", rank))
        if device.startswith("cuda"):
            device = f"cuda:{local}"
            torch.cuda.set_device(local)
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    dtype = args.dtype or ("bf16" if device.startswith("cuda") else "fp32")
    clip = load_clip(args.model, pretrained=None if args.random_weights else "openai", device=device, dtype=dtype)
    if rank == 0:
        print(f"{clip}; data {args.data}; results {args.out}", file=sys.stderr)
    try:
        out = evaluate_folder(
            clip, args.data, args.methods.split(","), args.out, targets=args.targets.split(","), limit=args.limit,
            batch_size=args.batch_size, score_batch=args.score_batch, workers=args.workers, seed=args.seed,
            causal=args.causal, cache=args.cache_dir,
        )
        if rank == 0:
            wanted = set(args.methods.split(","))
            print(format_summary([r for r in summary(out) if r["method"] in wanted]))
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


def _prepare_imagenet(args: argparse.Namespace) -> int:
    from .evaluation.prepare import prepare_imagenet

    report = prepare_imagenet(args.source, args.labels, args.out, move=args.move, progress=True)
    print(f"{report.total} images in {args.out} ({report.written} written now, {report.present} already there)")
    if report.unlabelled:
        print(f"{len(report.unlabelled)} file(s) of {args.source} have no label and were left out "
              f"(e.g. {report.unlabelled[0]})", file=sys.stderr)
    print(f"next: python -m gradeclip_lib evaluate --data {args.out} --out results/imagenet_val.jsonl ...")
    return 0


def _word_weights(args: argparse.Namespace) -> int:
    import json

    from .analyses.concreteness import concreteness_correlation, read_ratings, word_weights
    from .captions import read_captions
    from .models import load_clip

    images, captions = read_captions(args.captions, args.images, args.limit)  # bad input fails before the model
    ratings = read_ratings(args.ratings) if args.ratings else None
    pretrained = None if args.random_weights else "openai"
    clip = load_clip(args.model, pretrained=pretrained, device=args.device)
    print(f"{clip}; {len(captions)} captions of {len(set(images))} images", file=sys.stderr)
    weights = word_weights(clip, images, captions, batch_size=args.batch_size, progress=True)
    report: dict = {"model": args.model, "random_weights": args.random_weights, "captions": len(captions),
                    "words": weights}
    frequent = sorted(((w, m) for w, (m, c) in weights.items() if c >= args.min_count), key=lambda x: -x[1])
    print(f"heaviest words (>= {args.min_count} occurrences): "
          + ", ".join(f"{w} {m:.3f}" for w, m in frequent[:10]))
    if ratings is not None:
        corr = concreteness_correlation(weights, ratings, min_count=args.min_count)
        report["correlation"] = corr
        rho, low, high = corr["rho"]
        print(f"Spearman rho between mean weight and rating: {rho:.2f} [{low:.2f}, {high:.2f}] over "
              f"{corr['words']} words")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)
        print(f"written to {args.out}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from .captions import read_captions
    from .finetune.captioned import CaptionedConfig, finetune_captioned
    from .models import load_clip

    images, captions = read_captions(args.captions, args.images, args.limit)  # bad input fails before the model
    phrases = [line.strip() for line in open(args.phrases, encoding="utf-8") if line.strip()]
    cfg = CaptionedConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, local_weight=args.local_weight,
                          seed=args.seed, save_every=args.save_every)
    clip = load_clip(args.model, pretrained=None if args.random_weights else "openai", device=args.device)
    print(f"{clip}; {len(captions)} captions; {len(phrases)} phrases; checkpoints in {args.out}", file=sys.stderr)
    try:
        _, history = finetune_captioned(clip, images, captions, phrases, cfg, out=args.out)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"local loss {history['local'][0]:.3f} -> {history['local'][-1]:.3f}; the tuned weights: "
          f"{args.out}/model.safetensors (gl.load_clip({args.model.split(':')[0]!r}, pretrained=that file))")
    return 0


def _pack_weights(args: argparse.Namespace) -> int:
    from .book import model_spec
    from .models.loading import WEIGHTS_ENV
    from .models.pack import pack_weights

    specs = args.model or [model_spec()]
    try:
        files = pack_weights(specs, args.out)
    except GradEclipError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in files) / 2**20
    print(f"{len(files)} weights file(s), {size:.0f} MiB, in {args.out}. Copy the folder to each machine and set "
          f"{WEIGHTS_ENV}=<that folder> before starting Jupyter (make lab); the ShapesWorld models ship in data/.")
    return 0


def _model_check(args: argparse.Namespace) -> int:
    from .book import check

    found = check()
    return 1 if args.require_weights and not found else 0


def _grade(args: argparse.Namespace) -> int:
    from .grading import grade

    try:
        rows, runs = grade(args.submissions, args.out, timeout=args.timeout, rubric=args.rubric, book=args.book,
                           cwd=args.cwd, jobs=args.jobs, resume=args.resume)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {args.out}/gradebook.csv holds the notebooks graded so far", file=sys.stderr)
        return 130
    checked = [r for r in rows if r.passed is not None]
    print(f"{sum(runs.values())} notebook(s): " + ", ".join(f"{n} {s}" for s, n in sorted(runs.items()))
          + f"; {sum(bool(r.passed) for r in checked)} of {len(checked)} checked exercises passed, "
          f"{len(rows) - len(checked)} row(s) to mark by hand. Written: {args.out}/gradebook.csv, "
          f"{args.out}/feedback/<student>.md, {args.out}/executed/")
    return 0


def _captioned_options(p: argparse.ArgumentParser) -> None:
    """The options of the verbs that read captioned images: where they are, and the model."""
    p.add_argument("--captions", required=True, help="COCO's captions_*.json (with --images), or a folder of "
                   "images each with a same-named .txt of captions (one per line)")
    p.add_argument("--images", default=None, help="the folder of the COCO captions file's images")
    p.add_argument("--model", default="ViT-B-16-quickgelu:openai", help="NAME[:TAG], or 'shapes'")
    p.add_argument("--random-weights", action="store_true", help="the architecture with random weights, on purpose")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gradeclip_lib", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("explain", help="explain one image-text pair (or image-class pair) and save an overlay")
    p.add_argument("image", help="path of the image")
    p.add_argument("text", help="the text to explain the image against (with --classifier: a class name)")
    p.add_argument("--method", default="grad_eclip", help="explanation method (default grad_eclip)")
    p.add_argument("--mode", default=None, choices=["forward", "paper", "faithful"],
                   help="Grad-ECLIP on a CLIP ViT: forward (default) explains the model's own forward, paper "
                        "reproduces the authors' code; faithful is the older name of forward")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", default=None,
                       help="open_clip NAME[:TAG], ViT or ResNet, e.g. RN50:openai (default $GRADECLIP_MODEL or "
                            "the book's model)")
    model.add_argument("--classifier", default=None, help="a timm ViT classifier, e.g. vit_base_patch16_224.augreg_"
                                                         "in21k_ft_in1k; TEXT is then a class name")
    model.add_argument("--blip", default=None, help="a BLIP retrieval model, e.g. Salesforce/blip-itm-base-coco "
                                                   "(methods grad_eclip, itm_gradcam)")
    p.add_argument("--random-weights", action="store_true", help="use the architecture with random weights")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, type=_figure_path,
                   help="save the overlay: .png or .jpg (the image's size), .svg or .pdf (with the text as title)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of the saved file (default 150)")
    p.set_defaults(run=_explain)

    p = verbs.add_parser("bench", help="Grad-ECLIP throughput on this machine (ViT-B/16, random weights)")
    p.add_argument("--device", action="append", default=None, help="cpu, cuda (repeatable; default: all)")
    p.add_argument("--batch-cpu", type=int, default=8)
    p.add_argument("--batch-gpu", type=int, default=256)
    p.add_argument("--methods", default=None, help="also time these methods (comma-separated, or 'all')")
    p.add_argument("--evaluation", action="store_true",
                   help="also deletion + insertion images/s, vectorised against the per-image loop")
    p.add_argument("--eval-images", type=int, default=None, help="JPEGs in the evaluation bench (8 CPU, 512 GPU)")
    p.add_argument("--training", action="store_true",
                   help="also seconds per ShapesWorld training step, per preset, in fp32, bf16 and bf16 with the "
                        "math attention kernel")
    p.add_argument("--prompts", action="store_true",
                   help="also one image against 1, 10, 100 and 1000 text embeddings: the shared route against a "
                        "backward pass per text")
    p.add_argument("--sizes", action="store_true",
                   help="also seconds and peak memory of a forward pass and of a Grad-ECLIP map from 224 px to a "
                        "4032 x 3024 photo, each size in a fresh process, and their growth in the number of patches")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="with --sizes, skip the sizes above this many pixels (a 12 MP photo takes minutes on a CPU)")
    p.add_argument("--authors", default=None, metavar="PATH",
                   help="with --sizes, also the authors' generate_emap.py from this clone of "
                        "github.com/Cyang-Zhao/Grad-Eclip (needs pip install --no-deps openai-clip==1.0.1), "
                        "against paper mode on OpenAI's architecture, in the same process")
    p.add_argument("--out", default=None, help="also write the results as JSON")
    p.set_defaults(run=_bench)

    p = verbs.add_parser(
        "evaluate", help="deletion and insertion over an image folder DIR/<class>/<image> (resumable)",
        description="The authors' deletion / insertion protocol over DIR/<class>/<image> (ImageNet wnid "
        "folders get ImageNet's names and 80 templates). One JSON line per image x method x target; "
        "re-running the same command resumes. Several GPUs: torchrun --nproc_per_node=N -m gradeclip_lib "
        "evaluate ...",
    )
    p.add_argument("--data", required=True, help="image folder DIR/<class>/<image>")
    p.add_argument("--model", default="ViT-B-16-quickgelu:openai", help="NAME[:TAG], or 'shapes'")
    p.add_argument("--random-weights", action="store_true", help="the architecture with random weights, on purpose")
    p.add_argument("--methods", default="grad_eclip",
                   help="comma-separated, e.g. grad_eclip,grad_eclip:paper,rise:n_masks=500 (grad_eclip is "
                        "grad_eclip:forward, the model's own forward)")
    p.add_argument("--targets", default="gt", help="gt (the label), pred (the prediction), or gt,pred")
    p.add_argument("--out", required=True, help="results file (JSON lines); re-running resumes it")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (spread over the classes)")
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (default: 128 on a GPU, 16 on a CPU)")
    p.add_argument("--score-batch", type=int, default=None,
                   help="perturbed images per forward pass (default: 256 on a GPU, 8 on a CPU)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dtype", default=None, choices=["fp32", "fp16", "bf16"], help="default: bf16 on GPU, fp32 on CPU")
    p.add_argument("--workers", type=int, default=None,
                   help="processes decoding images (default: up to 8 on a GPU; 0 on a CPU, where the model "
                   "needs every core)")
    p.add_argument("--seed", type=int, default=0, help="seed of the deletion noise")
    p.add_argument("--causal", action="store_true", help="also the RISE causal metric (about 450 forwards per map)")
    p.add_argument("--cache-dir", default=None, help="zero-shot classifier cache (default $GRADECLIP_CACHE or "
                   "~/.cache/gradeclip)")
    p.set_defaults(run=_evaluate)

    p = verbs.add_parser(
        "word-weights", help="mean Grad-ECLIP text weight per word over captioned images, against ratings",
        description="Explain every caption against its image with Grad-ECLIP's text weights, average each "
        "word's weight over its occurrences, and (with --ratings, e.g. Brysbaert et al.'s concreteness "
        "norms) give the Spearman correlation between weight and rating with a 95 %% interval.",
    )
    _captioned_options(p)
    p.add_argument("--ratings", default=None, help="delimited text file: a word column and a rating column "
                   "(Conc.M or the first numeric one)")
    p.add_argument("--min-count", type=int, default=5, help="words seen fewer times are left out (default 5)")
    p.add_argument("--limit", type=int, default=None, help="only the first N captions")
    p.add_argument("--batch-size", type=int, default=64, help="captions per batch (default 64)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="write the word weights (and the correlation) as JSON")
    p.set_defaults(run=_word_weights)

    p = verbs.add_parser(
        "finetune", help="Grad-ECLIP-guided fine-tuning on captioned images (resumable)",
        description="Fine-tune a CLIP ViT with its contrastive loss plus a region-phrase loss: the phrases of "
        "--phrases found in each caption, each region pooled from dense features under the frozen model's "
        "Grad-ECLIP map (chapter 9). A checkpoint every --save-every steps; the same command resumes.",
    )
    _captioned_options(p)
    p.add_argument("--phrases", required=True, help="text file, one phrase per line (e.g. COCO's category names)")
    p.add_argument("--out", required=True, help="folder for checkpoints and the tuned model.safetensors")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--local-weight", type=float, default=1.0, help="weight of the region-phrase loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--limit", type=int, default=None, help="only the first N captions")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=_finetune)

    p = verbs.add_parser("prepare-imagenet", help="sort the ImageNet validation images into wnid folders",
                         description="Sort ILSVRC 2012 validation images into DIR/<wnid>/ (what valprep.sh "
                         "did). Nothing is downloaded; a rerun resumes where a stopped run ended.")
    p.add_argument("source", help="ILSVRC2012_img_val.tar, or a folder of ILSVRC2012_val_*.JPEG (e.g. Kaggle's "
                   "ILSVRC/Data/CLS-LOC/val)")
    p.add_argument("--labels", required=True, help="the devkit (ILSVRC2012_devkit_t12.tar.gz or its folder), "
                   "valprep.sh, Kaggle's LOC_val_solution.csv, or one wnid per line in image order")
    p.add_argument("--out", required=True, help="the folder to write DIR/<wnid>/<image> into")
    p.add_argument("--move", action="store_true", help="move the images of a source folder instead of copying")
    p.set_defaults(run=_prepare_imagenet)

    verbs.add_parser("shapes", help="ShapesWorld: train its models, measure, fine-tune, export scenes "
                     "(python -m gradeclip_lib shapes --help)", add_help=False)
    p = verbs.add_parser("pack-weights", help="pack CLIP weights into a folder for machines without internet",
                         description="Run once where there is internet: puts the weights of the book's model (or "
                                     "of --model) into OUT, copied from this machine's cache or downloaded. On "
                                     "machines without internet, set GRADECLIP_WEIGHTS=OUT and the library reads "
                                     "them from there.")
    p.add_argument("out", help="folder to write (created if missing)")
    p.add_argument("--model", action="append", default=None,
                   help="an open_clip model:tag, e.g. ViT-B-16-quickgelu:openai (repeatable; default: the book's)")
    p.set_defaults(run=_pack_weights)
    p = verbs.add_parser("grade", help="run the students' notebooks and write a gradebook and feedback",
                         description="Run each submitted notebook (SUBMISSIONS/<student>/<chapter>.ipynb or "
                         "SUBMISSIONS/<student>__<chapter>.ipynb) in a fresh kernel, offline and under a time "
                         "limit, read every exercise's self-check, and write OUT/gradebook.csv and "
                         "OUT/feedback/<student>.md (book/teaching.md, Grading).")
    p.add_argument("submissions", help="the folder of submitted notebooks")
    p.add_argument("--out", required=True, help="folder for gradebook.csv, feedback/ and executed/")
    p.add_argument("--timeout", type=float, default=600, help="seconds per notebook, then its kernel is killed "
                   "(default 600)")
    p.add_argument("--rubric", default=None, help="rubric JSON (default: the book's book/rubrics.json)")
    p.add_argument("--book", default=None, help="the chapters whose check cells are run (default: the book's)")
    p.add_argument("--cwd", default=None, help="folder the notebooks run in (default: the book's folder)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time (default 1)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows of OUT/gradebook.csv and grade only the notebooks it lacks")
    p.set_defaults(run=_grade)
    p = verbs.add_parser("model-check",
                         help="say which model chapters 1-3 will use, and warn if ShapesWorld stands in for it")
    p.add_argument("--require-weights", action="store_true",
                   help="exit with status 1 if the weights are not available (for a publishing build)")
    p.set_defaults(run=_model_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["shapes"]:  # ShapesWorld's own verbs, with their own parser and --help
        return shapes_cli.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (GradEclipError, ValueError) as err:  # a request the library refuses, with what to do
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
