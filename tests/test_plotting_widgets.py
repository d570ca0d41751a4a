"""Plots and the explorer, driven from Python as a reader's clicks would drive them."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import matplotlib

matplotlib.use("agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import gradeclip_lib as gl  # noqa: E402
from gradeclip_lib import plotting  # noqa: E402
from gradeclip_lib.widgets import explorer  # noqa: E402

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_overlay_puts_the_hot_spot_where_the_map_peaks(images):
    emap = torch.zeros(4, 6)
    emap[3, 5] = 1.0  # bottom-right token
    over = plotting.overlay(images[0], emap, alpha=1.0)
    assert over.shape == (40, 56, 3) and over.dtype == np.uint8
    red = over[..., 0].astype(int) - over[..., 2].astype(int)
    assert red[-1, -1] > 100 and red[0, 0] < 0  # jet: red where hot, blue where cold


def test_words_html_orders_colour_by_weight(tiny, images):
    words = gl.explain_text(tiny, images[0], "a big blue star")
    html = plotting.words_html(words)
    assert html.count("<span title=") == len(words.tokens)
    for token in words.tokens:
        assert f">{token}</span>" in html
    fig = plotting.words_figure(words)
    assert len(fig.axes[0].texts) == len(words.tokens) + 1


def test_explorer_callbacks_update_the_explanation(tiny, images):
    ex = explorer(tiny, {"a": images[0], "b": images[2]}, prompt="a red circle")
    first = ex.last.maps.clone()
    ex.prompt.value = "a green cross"
    assert ex.last_words.text == "a green cross"
    assert not torch.allclose(ex.last.maps, first)
    ex.image.value = "b"
    assert tuple(ex.last.maps.shape[1:]) == (4, 9)  # 33 x 70 image -> 4 x 9 tokens
    ex.mode.value = "paper"
    paper = gl.explain(tiny, images[2], "a green cross", mode="paper")
    torch.testing.assert_close(ex.last.maps, paper.maps)
    assert "cos(image, text)" in ex.status.value


def test_explorer_reports_bad_input_in_the_panel(tiny, images):
    ex = explorer(tiny, [images[0]])
    before = ex.last
    ex.prompt.value = " ".join(["word"] * 90)
    assert "77" in ex.status.value and ex.last is before


def test_explorer_upload(tiny, images):
    ex = explorer(tiny, [images[0]])
    buffer = io.BytesIO()
    images[1].save(buffer, format="PNG")
    ex.upload.value = ({"name": "mine.png", "type": "image/png", "size": buffer.tell(),
                        "content": memoryview(buffer.getvalue()), "last_modified": NOW},)
    assert ex.image.value == "mine.png"
    torch.testing.assert_close(ex.last.maps, gl.explain(tiny, images[1], ex.prompt.value).maps)
    ex.upload.value = ({"name": "junk.png", "type": "image/png", "size": 4, "content": memoryview(b"junk"),
                        "last_modified": NOW},)
    assert "could not read junk.png" in ex.status.value


def test_snapshot_is_a_static_figure(tiny, images):
    ex = explorer(tiny, [images[0]])
    fig, words = ex.snapshot()
    assert len(fig.axes) == 2 and len(words.axes) == 1


@pytest.mark.parametrize("fn", ["show_patch_grid", "show_terms"])
def test_figures_draw(tiny, images, fn):
    if fn == "show_patch_grid":
        ax = plotting.show_patch_grid(images[2], 8)
        assert len(ax.lines) == (72 // 8 + 1) + (32 // 8 + 1)
    else:
        fig = plotting.show_terms(images[2], gl.grad_eclip_terms(tiny, images[2], "a cat"))
        assert len(fig.axes) == 6  # four panels and two colour bars


def test_table_html_rounds_and_escapes():
    html = plotting.table_html([(1, "a<b", 0.12345)], ["n", "name", "score"])
    assert "<td>0.123</td>" in html and "a&lt;b" in html and html.count("<th>") == 3


def test_show_scenes_outlines_masks():
    from gradeclip_lib.synthetic import make_scenes

    fig = plotting.show_scenes(make_scenes(3, seed=0, n_objects=2), cols=2, masks=True)
    assert len(fig.axes) == 4 and len(fig.axes[0].collections) == 2  # one contour per object
