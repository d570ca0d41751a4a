"""A disk memo for the book's long experiments, used only when ``GRADECLIP_MEMO_DIR`` names a folder.

`make test` runs every chapter twice, as the instructor's and as the student's edition; with the memo on, the
second run reuses what the first computed for the same code, weights and arguments instead of computing it
again. The key is a hash of the function, every argument (tensors, model weights and image folders by their
content) and the library's source, so a changed input or a changed line of the library misses. Off by default:
a reader always computes."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

ENV = "GRADECLIP_MEMO_DIR"
PACKAGE = Path(__file__).resolve().parent
F = TypeVar("F", bound=Callable[..., Any])


class Unkeyable(TypeError):
    """An argument the memo cannot fingerprint by content: the call is computed, never looked up."""


@functools.cache
def source_hash() -> str:
    """A hash of every Python file of the library: any change to the code misses the memo."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return f"{t.dtype}{tuple(t.shape)}".encode() + t.numpy().tobytes()


def _feed(digest, obj: Any) -> None:
    """Feed ``obj``'s content into ``digest``; `Unkeyable` for a type whose content is not known here."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        digest.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, torch.Tensor):
        digest.update(b"tensor:" + _tensor_bytes(obj))
    elif isinstance(obj, np.ndarray):
        digest.update(b"ndarray:" + _tensor_bytes(torch.from_numpy(np.ascontiguousarray(obj))))
    elif isinstance(obj, Image.Image):
        digest.update(f"image:{obj.mode}{obj.size}".encode() + obj.tobytes())
    elif isinstance(obj, torch.nn.Module):
        digest.update(f"module:{type(obj).__qualname__}:{obj.training};".encode())
        for name, value in obj.state_dict().items():
            digest.update(name.encode())
            _feed(digest, value)
    elif isinstance(obj, os.PathLike):
        _feed_path(digest, Path(obj))
    elif isinstance(obj, dict):
        digest.update(b"dict{")
        for key in sorted(obj, key=repr):
            _feed(digest, key)
            _feed(digest, obj[key])
        digest.update(b"}")
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{type(obj).__name__}[".encode())
        for item in obj:
            _feed(digest, item)
        digest.update(b"]")
    elif isinstance(obj, (set, frozenset)):
        _feed(digest, sorted(obj, key=repr))
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        digest.update(f"dataclass:{type(obj).__qualname__}".encode())
        _feed(digest, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    elif isinstance(getattr(obj, "model", None), torch.nn.Module):  # a wrapped model: Clip, Classifier, Blip
        digest.update(f"wrapped:{type(obj).__qualname__}:{obj!r}:{getattr(obj, 'preprocess_cfg', None)!r}".encode())
        _feed(digest, obj.model)
    else:
        raise Unkeyable(f"cannot key a {type(obj).__qualname__} by its content")


def _feed_path(digest, path: Path) -> None:
    """A file by its content, a folder by its files' names and contents, a missing path by its name."""
    if path.is_dir():
        digest.update(b"folder:")
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode() + file.read_bytes())
    elif path.is_file():
        digest.update(b"file:" + path.read_bytes())
    else:
        digest.update(f"missing:{path}".encode())


def key_of(fn: Callable, arguments: dict[str, Any]) -> str:
    """The memo key of calling ``fn`` with ``arguments`` (names to values) under this library's source."""
    digest = hashlib.sha256(f"{fn.__module__}.{fn.__qualname__}:{source_hash()}".encode())
    _feed(digest, arguments)
    return digest.hexdigest()


def memoized(ignore: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorator: with ``GRADECLIP_MEMO_DIR`` set, return a stored result of an identical earlier call (its
    arguments except ``ignore``, which must not change the result) instead of calling ``fn``."""

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            folder = os.environ.get(ENV)
            if not folder:
                return fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            try:
                key = key_of(fn, {k: v for k, v in bound.arguments.items() if k not in ignore})
            except Unkeyable:
                return fn(*args, **kwargs)
            stored = Path(folder) / f"{fn.__module__}.{fn.__qualname__}.{key[:24]}.pt"
            if stored.is_file():
                return torch.load(stored, weights_only=False)
            result = fn(*args, **kwargs)
            stored.parent.mkdir(parents=True, exist_ok=True)
            partial = stored.with_suffix(f".{os.getpid()}.part")
            torch.save(result, partial)
            partial.replace(stored)
            return result

        return call  # type: ignore[return-value]

    return wrap
