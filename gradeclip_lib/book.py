"""What the book's chapters share: the model they explain, chosen by ``GRADECLIP_MODEL``, and the
warning box shown on every page that has to fall back to random weights."""

from __future__ import annotations

import html
import logging
import os
import re

import torch

from .errors import WeightsUnavailableError
from .models import Clip, load_clip
from .models.loading import split_name
from .outputs import Rich

DEFAULT_MODEL = "ViT-B-16-quickgelu:openai"

_BOX = (
    '<div class="admonition warning" style="border-left:4px solid #f0ad4e;padding:0.4em 0.8em;'
    'background:#fff8e6"><p class="admonition-title" style="font-weight:bold;margin:0">{title}</p>'
    "<p style='margin:0.3em 0 0 0'>{body}</p></div>"
)


def model_spec() -> str:
    """The model the book uses: ``$GRADECLIP_MODEL`` or the default 'ViT-B-16-quickgelu:openai'."""
    return os.environ.get("GRADECLIP_MODEL", DEFAULT_MODEL)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def random_weights_notice(spec: str, reason: str) -> str:
    name = split_name(spec, None)[0]
    return (
        f"The weights of <code>{spec}</code> could not be loaded here ({reason}). This page runs the same "
        f"architecture, <code>{name}</code>, with <b>random weights</b>: the code and the mechanics are real, "
        "but the maps and scores below say nothing about what CLIP has learnt. With internet, or with the "
        "weights in open_clip's cache, the same command renders the real figures."
    )


def book_model(spec: str | None = None, device: str | None = None) -> Clip:
    """The chapters' model. If its weights cannot be had, the same architecture with random weights,
    announced by a warning box on the page (``make book`` also warns in the build log)."""
    spec = spec or model_spec()
    device = device or default_device()
    try:
        return load_clip(spec, device=device)
    except WeightsUnavailableError as err:
        reason = str(err).splitlines()[0]
        name, _ = split_name(spec, None)
        logging.disable(logging.WARNING)  # open_clip's own "initialized randomly" line: the box says it
        try:
            clip = load_clip(name, pretrained=None, device=device)
        finally:
            logging.disable(logging.NOTSET)
        body = random_weights_notice(spec, html.escape(reason))
        _display_box(_BOX.format(title="Random weights", body=body), f"> **Random weights.** {_markdown(body)}")
        return clip


def _markdown(html_text: str) -> str:
    """The notice's few tags as Markdown (for the PDF, which does not render HTML)."""
    text = re.sub(r"</?code>", "`", html_text)
    return re.sub(r"</?b>", "**", text)


def _display_box(html_text: str, markdown: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Rich(html_text, markdown))


def check() -> bool:
    """Print which model the book will use; False (with a warning line) if it falls back to random."""
    spec = model_spec()
    try:
        clip = load_clip(spec)
    except WeightsUnavailableError as err:
        print(f"WARNING: the book's model {spec} is not available ({str(err).splitlines()[0]}).")
        print("WARNING: chapters on real photos will run with RANDOM WEIGHTS and say so on every page.")
        return False
    print(f"The book uses {clip}.")
    return True


QUIZ_NOTE = "*This quiz is interactive: take it in the web version of the book, or run the chapter in Jupyter.*"


def quiz(path: str) -> None:
    """A chapter's quiz (jupyterquiz, answered in the page). The PDF cannot run it, so each of its
    outputs also carries Markdown: a line that says where to take the quiz, in place of the quiz."""
    from IPython.display import display
    from IPython.utils.capture import capture_output
    from jupyterquiz import display_quiz

    with capture_output(stdout=False, stderr=False) as captured:
        display_quiz(path)
    for i, output in enumerate(captured.outputs):
        data = dict(output.data)
        data["text/markdown"] = QUIZ_NOTE if i == 0 else "<!-- the quiz's script: nothing to print -->"
        display(data, raw=True, metadata=output.metadata)
