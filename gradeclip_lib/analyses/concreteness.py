"""A word's textual weight against how much the picture decides it (the paper relates the weight to
concreteness ratings). On ShapesWorld the ground truth comes from the generator; on real captions a
reader brings CLIP weights, a captioned image folder and a ratings file (Brysbaert et al. 2014)."""

from __future__ import annotations

import csv
import math
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import GradEclipError
from ..explain import explain_text
from ..metrics import spearman_with_interval
from ..models.clip import Clip
from ..shapesworld.evaluate import image_size
from ..synthetic.scenes import COLOURS, SHAPES, TEMPLATES, make_scenes

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _entropy(p: dict) -> float:
    return -sum(q * math.log2(q) for q in p.values() if q > 0)


def _sum_distribution(a: dict, b: dict) -> dict:
    out: dict = defaultdict(float)
    for x, p in a.items():
        for y, q in b.items():
            out[x + y] += p * q
    return dict(out)


def groundedness(n_objects: tuple[int, int] = (1, 3)) -> dict[str, float]:
    """For every word a ShapesWorld caption can hold, the share of the uncertainty of how often it occurs
    that the picture removes: I(count; scene) / H(count), exactly, from the generator's grammar.

    A caption is a template (uniform, independent of the picture) around k "a <colour> <shape>" phrases
    joined by "and", k uniform in ``n_objects``, colours and shapes drawn without replacement. So a word's
    count is s(scene) + t(template), and H(count | scene) = H(t): colour and shape words score 1, "and"
    (k - 1 of them) scores 1, template words 0, "a" in between (k of them plus the template's)."""
    lo, hi = n_objects
    ks = range(lo, hi + 1)
    template_words = [_WORD.findall(t.replace("{}", " ")) for t in TEMPLATES]
    vocabulary = sorted({w for ws in template_words for w in ws} | {"a", "and"} | set(COLOURS) | set(SHAPES))
    scores = {}
    for word in vocabulary:
        t: dict = defaultdict(float)
        for ws in template_words:
            t[ws.count(word)] += 1 / len(TEMPLATES)
        s: dict = defaultdict(float)
        for k in ks:
            p = 1 / len(ks)
            if word in COLOURS or word in SHAPES:
                share = k / len(COLOURS if word in COLOURS else SHAPES)
                s[1] += p * share
                s[0] += p * (1 - share)
            else:
                s[{"a": k, "and": k - 1}.get(word, 0)] += p
        total = _entropy(_sum_distribution(s, t))
        scores[word] = (total - _entropy(t)) / total if total > 0 else float("nan")
    return scores


def caption_words(clip: Clip, text: str, pieces: Sequence[str]) -> list[tuple[str, list[int]]]:
    """The caption's words, each with the indices of its word pieces (CLIP's BPE may cut a word in
    several); pieces that cannot be aligned with the words are kept one per 'word'."""
    encode = getattr(clip.tokenizer, "encode", None)
    words, at = [], 0
    if encode is not None:
        for raw in text.split():
            n = len(encode(raw))
            key = " ".join(_WORD.findall(raw.lower()))
            if n:
                words.append((key or raw.lower(), list(range(at, at + n))))
            at += n
    if encode is None or at != len(pieces):
        return [(p, [i]) for i, p in enumerate(pieces)]
    return [(w, idx) for w, idx in words if w]


def word_weights(clip: Clip, images: Sequence, captions: Sequence[str], method: str = "grad_eclip",
                 batch_size: int = 64, progress: bool = False) -> dict[str, tuple[float, int]]:
    """Mean textual weight per word over captions (one caption per image; an image may repeat), with
    how many times the word occurred: {word: (mean weight, occurrences)}. A word's weight in one caption
    is the sum of its pieces' weights (each caption's weights sum to 1)."""
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions: give one caption per image")
    totals: dict = defaultdict(lambda: [0.0, 0])
    starts = range(0, len(captions), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="word weights", unit="batch")
    for start in starts:
        chunk = slice(start, start + batch_size)
        explained = explain_text(clip, list(images[chunk]), list(captions[chunk]), method=method)
        for exp in explained if isinstance(explained, list) else [explained]:
            for word, idx in caption_words(clip, exp.text, exp.tokens):
                totals[word][0] += float(exp.weights[idx].sum())
                totals[word][1] += 1
    return {w: (s / c, c) for w, (s, c) in sorted(totals.items())}


def shapes_word_weights(clip: Clip, n: int = 500, seed: int = 90_000, n_objects: tuple[int, int] = (1, 3),
                        method: str = "grad_eclip") -> dict[str, tuple[float, int]]:
    """`word_weights` of a ShapesWorld model on ``n`` held-out scenes with their own captions."""
    scenes = make_scenes(n, seed=seed, n_objects=n_objects, size=image_size(clip))
    return word_weights(clip, [s.image for s in scenes], [s.caption for s in scenes], method=method)


def concreteness_correlation(weights: dict[str, tuple[float, int]], ratings: dict[str, float],
                             min_count: int = 5) -> dict:
    """Spearman correlation between a word's mean textual weight and its rating, over the words that
    occur at least ``min_count`` times and have a rating (nan ratings dropped): (rho, low, high) with a
    95 % interval over words, and the table of words used."""
    rows = [(w, m, c, ratings[w]) for w, (m, c) in weights.items()
            if c >= min_count and w in ratings and not math.isnan(ratings[w])]
    if len(rows) < 4:
        raise ValueError(f"only {len(rows)} words occur {min_count} times or more and have a rating; a "
                         "correlation needs at least 4: give more captions, or a ratings file that covers them")
    rho = spearman_with_interval([r[1] for r in rows], [r[3] for r in rows])
    table = [{"word": w, "weight": m, "count": c, "rating": g} for w, m, c, g in rows]
    return {"rho": rho, "words": len(rows), "table": sorted(table, key=lambda r: -r["weight"])}


def read_ratings(path: str | os.PathLike, word_column: str | None = None,
                 rating_column: str | None = None) -> dict[str, float]:
    """{word: rating} from a delimited text file (tab, comma or semicolon; the delimiter is detected) with
    a header row, such as Brysbaert et al.'s concreteness norms ('Word', 'Conc.M'). Without column names,
    the word column is the one called word/Word and the rating column 'Conc.M' or the first numeric one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ratings file at {path}: give a delimited text file with a header row")
    text = path.read_text(encoding="utf-8-sig")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters="\t,;")
    except csv.Error:
        raise GradEclipError(f"{path}: could not tell its delimiter; save it as tab- or comma-separated text "
                             "with a header row") from None
    rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
    if not rows:
        raise GradEclipError(f"{path}: no rows under the header")
    columns = list(rows[0])
    word_column = word_column or next((c for c in columns if c.strip().lower() == "word"), None)
    if rating_column is None:
        rating_column = "Conc.M" if "Conc.M" in columns else next(
            (c for c in columns if c != word_column and _is_number(rows[0][c])), None)
    if word_column not in columns or rating_column not in columns:
        raise GradEclipError(f"{path}: columns {columns}; name the word and rating columns "
                             "(word_column=..., rating_column=...)")
    ratings = {}
    for row in rows:
        value = row[rating_column]
        if row[word_column] and _is_number(value):
            ratings[row[word_column].strip().lower()] = float(value)
    return ratings


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def groundedness_table(weights: dict[str, tuple[float, int]], truth: dict[str, float] | None = None) -> list[dict]:
    """Rows word / weight / occurrences / groundedness, heaviest first, for ShapesWorld words."""
    truth = truth or groundedness()
    return sorted(({"word": w, "weight": m, "count": c, "groundedness": truth.get(w, np.nan)}
                   for w, (m, c) in weights.items()), key=lambda r: -r["weight"])
