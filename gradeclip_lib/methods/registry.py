"""One registry of explanation methods: each method is registered for the model families it applies to,
and a family's methods are looked up by name (`method_for`). A method asked of a family it does not apply
to raises `UnsupportedModelError` naming those that do.

An image method is ``f(model, pixels, targets, index, **options) -> MethodOutput`` where ``pixels``
[I, 3, H, W] holds images of one size, ``targets`` one row per pair of what the family explains against
(unit text embeddings [B, E], class ids [B], token ids [B, L]: the family adapter's ``encode_targets``) and
``index`` [B] the image of each pair; ``maps`` is [B, h, w]. A text method (family ``clip_text``) is
``f(clip, ids, targets, **options)`` with token ids [B, L] and image embeddings [B, E]; its ``maps`` is
[B, L], one weight per token position.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from ..adapters import ADAPTERS
from ..errors import UnsupportedModelError

IMAGE_FAMILIES: tuple[str, ...] = tuple(ADAPTERS)  # the families with an image adapter
FAMILIES: dict[str, str] = {**{name: a.description for name, a in ADAPTERS.items()}, "clip_text": "CLIP text tower"}


@dataclass
class MethodOutput:
    maps: torch.Tensor
    scores: torch.Tensor  # [B] the score each map explains (a cosine, a logit...)


@dataclass(frozen=True)
class MethodInfo:
    name: str
    fn: Callable[..., MethodOutput]
    cost: str
    pair_seeds: bool = False  # ``seed`` is one integer per pair (see `explain`), not one per call
    forwards: Callable | None = None  # the function ``fn``'s ``**options`` go to, for `options_of`
    quadratic: int = 0  # tokens x tokens matrices per head it holds at once (0: memory linear in the tokens)


_TABLE: dict[str, dict[str, MethodInfo]] = {family: {} for family in FAMILIES}  # family -> name -> method


def register(name: str, families: Iterable[str] = IMAGE_FAMILIES, cost: str = "", pair_seeds: bool = False,
             forwards: Callable | None = None, quadratic: int = 0):
    """Decorator: make ``fn`` the method ``name`` of each of ``families`` (by default every family with an
    image adapter: a method written over the adapter protocol). With ``pair_seeds`` the method receives
    ``seed`` as a list, one integer per pair, so that a pair's map does not depend on its batch. ``forwards``:
    the function that ``fn``'s ``**options`` go to (their names are options of the method too). ``quadratic``:
    how many tokens x tokens matrices per head the method holds at once (attention and its gradient, say),
    so that an image too large for it is refused before it starts (`methods.memory`)."""
    families = tuple(families)
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown model families {sorted(unknown)}; families: {', '.join(FAMILIES)}")

    def wrap(fn: Callable[..., MethodOutput]) -> Callable[..., MethodOutput]:
        for family in families:
            _TABLE[family][name] = MethodInfo(name, fn, cost, pair_seeds, forwards, quadratic)
        return fn

    return wrap


class FamilyMethods(Mapping[str, MethodInfo]):
    """The methods of one family, by name: a live, read-only view of the registry."""

    def __init__(self, family: str) -> None:
        self.family = family

    def __getitem__(self, name: str) -> MethodInfo:
        return _TABLE[self.family][name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(_TABLE[self.family]))

    def __len__(self) -> int:
        return len(_TABLE[self.family])

    def __repr__(self) -> str:
        return f"FamilyMethods({self.family!r}: {', '.join(sorted(self))})"


def methods_of(family: str) -> FamilyMethods:
    """The methods registered for ``family`` (e.g. "clip_vit", "timm_vit", "clip_text")."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; families: {', '.join(FAMILIES)}")
    return FamilyMethods(family)


def method_for(family: str, name: str, model_name: str | None = None) -> MethodInfo:
    """The method ``name`` of ``family``; `UnsupportedModelError` naming the family's methods when ``name``
    exists for other families only, ValueError when no family has it."""
    table = _TABLE[family]
    if name in table:
        return table[name]
    available = ", ".join(sorted(table))
    others = [FAMILIES[f] for f, methods in _TABLE.items() if name in methods]
    what = f"a {FAMILIES[family]}" + (f" ({model_name})" if model_name else "")
    if others:
        raise UnsupportedModelError(f"{name!r} does not apply to {what}: it is a method for {', '.join(others)}. "
                                    f"Methods for {what}: {available}.")
    raise ValueError(f"unknown method {name!r}; available for {what}: {available}")


def options_of(info: MethodInfo, target: Callable | None = None, text: bool = False) -> set[str]:
    """The option names a method takes: its keyword parameters, those of the function its ``**options`` go to,
    and the family target's (``target``, e.g. a classifier's ``probability``) where it passes ``**target_options``.
    ``text``: a text method, ``f(clip, ids, targets, **options)``."""

    def names(fn: Callable, skip: int) -> set[str]:
        params = list(inspect.signature(fn).parameters.values())[skip:]
        found = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        rest = next((p.name for p in params if p.kind == p.VAR_KEYWORD), None)
        if rest == "target_options" and target is not None:
            found |= names(target, 1)
        elif rest is not None and fn is info.fn and info.forwards is not None:
            found |= names(info.forwards, 4)
        return found

    return names(info.fn, 3 if text else 4)


def check_options(info: MethodInfo, options: dict, what: str, target: Callable | None = None,
                  text: bool = False) -> None:
    """ValueError naming the options ``info`` takes when ``options`` holds another (the same on every family)."""
    known = options_of(info, target, text)
    unknown = sorted(set(options) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no options"
        raise ValueError(f"{info.name!r} on {what} takes {takes}; got {', '.join(unknown)}")


def pair_seeds(seed: int | Sequence[int] | torch.Tensor, n_pairs: int) -> list[int]:
    """One seed per pair for methods registered with ``pair_seeds``: ``seed + p`` for an integer, else
    the given ones (as many as pairs)."""
    if isinstance(seed, int):
        return [seed + p for p in range(n_pairs)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n_pairs:
        raise ValueError(f"got {len(seeds)} seeds for {n_pairs} (image, text) pairs: give one per pair, or one int")
    return seeds


def lookup(table: Mapping[str, MethodInfo], name: str, kind: str) -> MethodInfo:
    """``table[name]`` for a family's methods (``kind`` names them in the error)."""
    if isinstance(table, FamilyMethods):
        return method_for(table.family, name)
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} method {name!r}; available: {', '.join(sorted(table))}") from None


IMAGE_METHODS = methods_of("clip_vit")  # views kept under their old names (the book and tests read them)
RESNET_METHODS = methods_of("clip_resnet")
CLASSIFIER_METHODS = methods_of("timm_vit")
BLIP_METHODS = methods_of("blip")
TEXT_METHODS = methods_of("clip_text")
