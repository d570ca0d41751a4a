"""An interactive explorer for notebooks: pick or upload an image, type a prompt, choose the method
and mode, and see the map and the word weights update. With Grad-ECLIP the map follows the typing: the
image's terms are computed once per image and mode (`prompts.prompt_maps`), and each new prompt costs
one text encoding and a matrix product."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
from PIL import Image

from .errors import GradEclipError
from .explain import explain, explain_text
from .images import ImageInput, load_image
from .methods import IMAGE_METHODS, TEXT_METHODS
from .models.clip import Clip
from .plotting import show_panels, words_figure, words_html
from .prompts import PromptMaps, prompt_maps
from .samples import sample_images


class Explorer:
    """The explorer panel; display it in a notebook (``explorer(clip)`` as a cell's last line).

    Every control calls `update`, which recomputes the explanation; ``last`` and ``last_words`` hold
    the latest results and ``snapshot()`` draws them as a static figure (for printed pages).
    """

    def __init__(self, clip: Clip, images: Mapping[str, ImageInput] | Sequence[ImageInput] | None = None,
                 prompt: str = "a photo of a cat") -> None:
        if images is None:
            images = sample_images()
        if not isinstance(images, Mapping):
            images = {f"image {i}": im for i, im in enumerate(images)}
        self.clip = clip
        self.images: dict[str, ImageInput] = dict(images)
        self.image = W.Dropdown(options=list(self.images), description="image")
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload")
        self.prompt = W.Text(value=prompt, description="prompt", continuous_update=True)
        self.method = W.Dropdown(options=sorted(IMAGE_METHODS), value="grad_eclip", description="method")
        self.mode = W.ToggleButtons(options=["forward", "paper"], description="mode")
        self.output = W.Output()
        self.words = W.HTML()
        self.status = W.HTML()
        for control in (self.image, self.prompt, self.method, self.mode):
            control.observe(self._changed, names="value")
        self.upload.observe(self._uploaded, names="value")
        self.widget = W.VBox([
            W.HBox([self.image, self.upload]), self.prompt, W.HBox([self.method, self.mode]),
            self.status, self.output, self.words,
        ])
        for part, name in ((self.widget, "explorer"), (self.prompt, "prompt"), (self.status, "status"),
                           (self.output, "map"), (self.words, "words")):
            part.add_class(f"gradeclip-{name}")  # stable names for the page (tests/test_explorer_lab.py)
        self.last = None
        self.last_words = None
        self._prompt_maps: dict[tuple[str, str], PromptMaps] = {}  # (image, mode) -> the image's terms
        self.update()

    def _changed(self, _change=None) -> None:
        self.update()

    def _uploaded(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        try:
            image = load_image(Image.open(io.BytesIO(bytes(item["content"]))))
        except Exception as err:  # a bad upload is reported in the panel, not raised
            self.status.value = f"<span style='color:#b00'>could not read {item['name']}: {err}</span>"
            return
        self.images[item["name"]] = image
        self.image.options = list(self.images)
        self.image.value = item["name"]  # triggers update

    def update(self) -> None:
        """Recompute the map and word weights for the current controls and redraw."""
        image = self.images[self.image.value]
        options = {"mode": self.mode.value} if self.method.value == "grad_eclip" else {}
        self.mode.disabled = self.method.value != "grad_eclip"
        try:
            if self.method.value == "grad_eclip":  # as fast as the reader types: the image's terms are kept
                key = (self.image.value, self.mode.value)
                if key not in self._prompt_maps:
                    self._prompt_maps[key] = prompt_maps(self.clip, image, mode=self.mode.value)
                self.last = self._prompt_maps[key](self.prompt.value)
            else:
                self.last = explain(self.clip, image, self.prompt.value, method=self.method.value, **options)
            text_method = self.method.value if self.method.value in TEXT_METHODS else "grad_eclip"
            self.last_words = explain_text(self.clip, image, self.prompt.value, method=text_method)
        except GradEclipError as err:
            self.status.value = f"<span style='color:#b00'>{err}</span>"
            return
        self.status.value = f"cos(image, text) = {float(self.last.scores[0]):.4f}"
        self.words.value = words_html(self.last_words)
        with self.output:
            self.output.clear_output(wait=True)
            fig = show_panels(image, {f"{self.method.value} ({self.mode.value})": self.last.maps[0]})
            plt.show()
            plt.close(fig)

    def snapshot(self):
        """The current map and word weights as one static matplotlib figure."""
        image = self.images[self.image.value]
        fig = show_panels(image, {f"{self.method.value}: “{self.prompt.value}”": self.last.maps[0]}, size=3.5)
        return fig, words_figure(self.last_words)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def explorer(clip: Clip, images: Mapping[str, ImageInput] | Sequence[ImageInput] | None = None,
             prompt: str = "a photo of a cat") -> Explorer:
    """An interactive Grad-ECLIP explorer over ``images`` (the sample photos by default)."""
    return Explorer(clip, images, prompt)
