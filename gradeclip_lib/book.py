"""What the book's chapters share: the model and images of chapters 1-3 (CLIP on photographs, chosen by
``GRADECLIP_MODEL``, or the ShapesWorld CLIP on its scenes where CLIP's weights cannot be had) and the box
that says which one a page shows. A page never shows random weights: a figure its prose reads must come
from a trained model."""

from __future__ import annotations

import base64
import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .errors import WeightsUnavailableError
from .images import load_image
from .models import Clip, load_clip
from .outputs import Rich
from .samples import sample_images
from .synthetic.scenes import COLOURS, SHAPES, make_scenes

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


def shapes_notice(spec: str, reason: str) -> str:
    return (
        f"The weights of <code>{spec}</code> could not be loaded here ({reason}). Rather than random weights, "
        "this page runs the same code on the <b>ShapesWorld CLIP</b> (chapter 5): a small CLIP trained on "
        "synthetic scenes of coloured shapes, shipped with the book, explained on those scenes. With internet, "
        "or with the weights in open_clip's cache, the same cells run on OpenAI's CLIP and photographs."
    )


@dataclass
class BookSubject:
    """The model, images and texts of chapters 1-3. Each field has a photograph's value and a ShapesWorld
    value, so that one cell runs on either (configs as data: `PHOTO_TEXTS`, `_shapes_subject`)."""

    clip: Clip
    photos: bool  # True: CLIP on photographs; False: the ShapesWorld CLIP on scenes
    images: dict[str, Image.Image]  # name -> image; the first is the chapters' main example
    captions: dict[str, str]  # name -> a caption of that image
    parts: list[str]  # two prompts naming two parts of the main image
    crowd: str  # the image explained with several prompts
    crowd_prompts: list[str]
    wide: str  # an image wider than it is high
    sentence: str  # a longer description of the main image
    sentences: list[str]  # right, with one word wrong, partly right, about something absent
    classes: list[str] | None  # the atlas's classes (None: ImageNet's 1 000)
    template: str  # the atlas's prompt template

    @property
    def main(self) -> str:
        return next(iter(self.images))

    @property
    def image(self) -> Image.Image:
        return self.images[self.main]

    @property
    def caption(self) -> str:
        return self.captions[self.main]

    @property
    def what(self) -> str:
        """The model and images in a few words, for a figure's title or a sentence."""
        return "CLIP on photographs" if self.photos else "the ShapesWorld CLIP on its scenes"


PHOTO_TEXTS = {
    "captions": {"chelsea": "a photo of a cat", "astronaut": "an astronaut", "coffee": "a cup of coffee",
                 "rocket": "a rocket launch"},
    "parts": ["the eyes of a cat", "the nose of a cat"],
    "crowd": "astronaut", "crowd_prompts": ["a woman", "an American flag", "a space suit", "a rocket"],
    "wide": "rocket",
    "sentence": "a close-up photo of a tabby cat with green eyes",
    "sentences": ["a tabby cat with green eyes", "a tabby dog with green eyes", "a cat next to a cup of coffee",
                  "an astronaut in a space suit"],
    "classes": None, "template": "a photo of a {}.",
}
SHAPES_SCENES = {"two objects": (2, 12), "three objects": (3, 11), "one object": (1, 4)}  # name -> (objects, seed)


def _photo_subject(clip: Clip) -> BookSubject:
    paths = sample_images()
    order = ["chelsea", *(name for name in paths if name != "chelsea")]
    images = {name: load_image(paths[name]) for name in order}
    texts = dict(PHOTO_TEXTS)
    return BookSubject(clip=clip, photos=True, images=images, captions=texts.pop("captions"), **texts)


def _shapes_subject(clip: Clip) -> BookSubject:
    size = clip.crop_size
    scenes = {name: make_scenes(1, seed=seed, n_objects=k, size=size)[0] for name, (k, seed) in SHAPES_SCENES.items()}
    images = {name: scene.image for name, scene in scenes.items()}
    left, right = make_scenes(2, seed=6, n_objects=1, size=size)  # two scenes side by side: 2:1
    wide = Image.new("RGB", (2 * size, size))
    wide.paste(left.image, (0, 0))
    wide.paste(right.image, (size, 0))
    images["wide"] = wide
    captions = {name: " and ".join(o.phrase for o in scene.objects) for name, scene in scenes.items()}
    captions["wide"] = right.objects[0].phrase  # the object a centre crop leaves out
    a, b = scenes["two objects"].objects
    absent = [f"{c} {s}" for c in COLOURS for s in SHAPES if {c, s}.isdisjoint({a.colour, a.shape, b.colour, b.shape})]
    return BookSubject(
        clip=clip, photos=False, images=images, captions=captions, parts=[a.phrase, b.phrase],
        crowd="three objects", crowd_prompts=[o.phrase for o in scenes["three objects"].objects], wide="wide",
        sentence="a photo of " + captions["two objects"],
        sentences=[f"{a.phrase} and {b.phrase}", f"a {b.colour} {a.shape} and a {a.colour} {b.shape}", a.phrase,
                   f"a {absent[0]} and a {absent[-1]}"],
        classes=[f"{c} {s}" for c in COLOURS for s in SHAPES], template="a photo of a {}",
    )


def photo_subject(spec: str | None = None, device: str | None = None) -> BookSubject | None:
    """The model of ``spec`` (`model_spec`) on the sample photographs, or None where its weights cannot be had."""
    try:
        return _photo_subject(load_clip(spec or model_spec(), device=device or default_device()))
    except WeightsUnavailableError:
        return None


def book_subject(spec: str | None = None, device: str | None = None) -> BookSubject:
    """Chapters 1-3's model and images: the model of ``spec`` (`model_spec`) on the sample photographs; where
    its weights cannot be had, the ShapesWorld CLIP on ShapesWorld scenes, announced by a box on the page."""
    spec = spec or model_spec()
    device = device or default_device()
    try:
        return _photo_subject(load_clip(spec, device=device))
    except WeightsUnavailableError as err:
        reason = str(err).splitlines()[0]
    body = shapes_notice(spec, html.escape(reason))
    _display_box(_BOX.format(title="ShapesWorld instead of CLIP", body=body),
                 f"> **ShapesWorld instead of CLIP.** {_markdown(body)}")
    return _shapes_subject(load_clip("shapes", device=device))


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
        print("WARNING: chapters 1-3 will show the ShapesWorld CLIP on its scenes instead, and say so on the page.")
        return False
    print(f"The book uses {clip}.")
    return True


QUIZ_NOTE = "*This quiz is interactive: take it in the web version of the book, or run the chapter in Jupyter.*"


def quiz_questions(path: str | os.PathLike) -> list[dict]:
    """A quiz's questions from its JSON file, or from the base64-encoded ``.quiz`` beside it (the student
    edition's form, whose answers are not in plain text)."""
    path = Path(path)
    if path.exists():
        return json.loads(path.read_text())
    encoded = path.with_suffix(".quiz")
    if encoded.exists():
        return json.loads(base64.b64decode(encoded.read_text()))
    raise FileNotFoundError(f"No quiz at {path} (nor {encoded.name}): run the notebook from the book's folder.")


def quiz(path: str) -> None:
    """A chapter's quiz (jupyterquiz, answered in the page). The PDF cannot run it, so each of its
    outputs also carries Markdown: a line that says where to take the quiz, in place of the quiz."""
    from IPython.display import display
    from IPython.utils.capture import capture_output
    from jupyterquiz import display_quiz

    with capture_output(stdout=False, stderr=False) as captured:
        display_quiz(quiz_questions(path))
    for i, output in enumerate(captured.outputs):
        data = dict(output.data)
        data["text/markdown"] = QUIZ_NOTE if i == 0 else "<!-- the quiz's script: nothing to print -->"
        display(data, raw=True, metadata=output.metadata)
