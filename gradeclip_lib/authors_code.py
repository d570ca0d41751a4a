"""The authors' own Grad-ECLIP code, run on a model of this library, for side-by-side benchmarks.

Their ``generate_emap.py`` (github.com/Cyang-Zhao/Grad-Eclip) loads OpenAI's weights and several other
repositories when it is imported, so it cannot be imported offline. This module reads three of its
functions from the file, unchanged but for one cast (their ``clip_encode_dense`` turns the image to fp16
for their fp16 GPU model; here it takes the model's own dtype), and runs them on OpenAI's model class
(the ``openai-clip`` package) holding the same weights as an open_clip model. The file is never copied
into this repository: a user clones their repository and passes its path."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import GradEclipError

FUNCTIONS = ("attention_layer", "clip_encode_dense", "grad_eclip")
CAST = ("x = x.half()", "x = x.to(clipmodel.dtype)")
REPOSITORY = "https://github.com/Cyang-Zhao/Grad-Eclip"


def openai_model(model: torch.nn.Module) -> torch.nn.Module:
    """OpenAI's CLIP class (``clip.model.build_model``) with the weights of an open_clip model of the same
    architecture (``ViT-B-16-quickgelu``, not ``ViT-B-16``, whose GELU differs), in that model's dtype.
    ``clip/model.py`` is loaded alone: the package's ``__init__`` needs ``pkg_resources``."""
    spec = importlib.util.find_spec("clip")
    if spec is None or spec.origin is None:
        raise GradEclipError("The authors' code runs on OpenAI's CLIP class: pip install --no-deps openai-clip==1.0.1")
    source = Path(spec.origin).with_name("model.py")
    module_spec = importlib.util.spec_from_file_location("openai_clip_model", source)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    weights = model.state_dict()
    openai = module.build_model(dict(weights))  # copies them, in fp16 (it deletes keys of the dict it gets)
    openai = openai.to(dtype=next(model.parameters()).dtype)
    openai.load_state_dict(weights)  # the exact weights again, not their fp16 rounding
    return openai.to(next(model.parameters()).device).eval()


def authors_functions(path: str | Path, openai: torch.nn.Module) -> dict:
    """``attention_layer``, ``clip_encode_dense`` and ``grad_eclip`` read from the authors' ``generate_emap.py``
    (``path`` is the file or the clone holding it), bound to ``openai`` as their global ``clipmodel``."""
    path = Path(path)
    file = path / "generate_emap.py" if path.is_dir() else path
    if not file.is_file():
        raise GradEclipError(f"No generate_emap.py at {path}. Clone the authors' code (git clone {REPOSITORY}) "
                             "and pass the folder.")
    tree = ast.parse(file.read_text())
    found = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in FUNCTIONS}
    missing = sorted(set(FUNCTIONS) - set(found))
    if missing:
        raise GradEclipError(f"{file} has no function {', '.join(missing)}: not the authors' generate_emap.py?")
    code = ast.unparse(ast.Module(body=[found[name] for name in FUNCTIONS], type_ignores=[]))
    if code.count(CAST[0]) != 1:
        raise GradEclipError(f"{file}: expected one '{CAST[0]}' in clip_encode_dense; the file has changed")
    namespace = {"torch": torch, "F": F, "clipmodel": openai}
    exec(compile(code.replace(*CAST), str(file), "exec"), namespace)  # noqa: S102 - the user's own clone
    return namespace


def authors_map(functions: dict, pixels: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Their map and cosine for one image [1, 3, H, W] (already at its patch-rounded size and normalised) and
    one unit text embedding [E], as their ``__main__`` computes them."""
    outputs, _, _, v, q_out, k_out, _, att_output, map_size = functions["clip_encode_dense"](pixels)
    cosine = (F.normalize(outputs[:, 0], dim=-1) @ text.reshape(-1, 1))[0, 0]
    emap = functions["grad_eclip"](cosine, q_out, k_out, v, att_output, map_size)
    return emap.detach(), float(cosine.detach())
