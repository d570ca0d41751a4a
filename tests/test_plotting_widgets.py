"""Plots and the explorer, driven from Python as a reader's clicks would drive them."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import matplotlib

matplotlib.use("agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

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


def test_faded_overlay_leaves_the_image_where_the_map_is_low(images):
    emap = torch.zeros(4, 6)
    emap[3, 5] = 1.0
    plain = np.asarray(images[0])
    faded = plotting.overlay(images[0], emap, alpha=0.8, fade=True)
    assert np.array_equal(faded[:8, :8], plain[:8, :8])  # cold corner: the image itself
    full = plotting.overlay(images[0], emap, alpha=0.8)
    assert np.abs(full[:8, :8].astype(int) - plain[:8, :8]).mean() > 20  # without fade, tinted blue
    assert np.array_equal(faded[-1, -1], full[-1, -1])  # at the peak both use the full alpha


def test_outline_draws_the_mask_contour(images):
    mask = np.zeros((40, 56), dtype=bool)
    mask[10:20, 10:30] = True
    ax = plotting.show_map(images[0], torch.rand(4, 6), outline=mask)
    assert len(ax.collections) == 2  # a black and a white contour
    paths = ax.collections[1].get_paths()
    vertices = np.concatenate([p.vertices for p in paths])
    assert vertices[:, 0].min() >= 8 and vertices[:, 0].max() <= 31  # x around columns 10..29
    assert vertices[:, 1].min() >= 8 and vertices[:, 1].max() <= 21


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
    torch.testing.assert_close(ex.last.maps, paper.maps, rtol=0, atol=1e-5 * float(paper.maps.max()))
    assert "cos(image, text)" in ex.status.value


def test_explorer_keeps_each_images_terms_while_the_reader_types(tiny, images, monkeypatch):
    import gradeclip_lib.widgets as widgets

    computed = []
    original = widgets.prompt_maps
    monkeypatch.setattr(widgets, "prompt_maps", lambda clip, image, **k: computed.append(k["mode"]) or original(
        clip, image, **k))
    ex = explorer(tiny, {"a": images[0]}, prompt="a")
    assert ex.prompt.continuous_update  # the map follows the typing
    for typed in ("a r", "a re", "a red", "a red c", "a red circle"):
        ex.prompt.value = typed
    assert computed == ["forward"]  # one forward pass for the image, none per keystroke
    expected = gl.explain(tiny, images[0], "a red circle")
    torch.testing.assert_close(ex.last.maps, expected.maps, rtol=0, atol=1e-5 * float(expected.maps.max()))
    ex.method.value = "game"  # other methods run the full explanation
    assert ex.last.method == "game" and computed == ["forward"]


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


@pytest.mark.parametrize("with_binding", [True, False])
def test_plot_history_draws_binding_when_recorded(with_binding):
    history = {"step": [25, 50], "loss": [3.0, 2.0], "eval_step": [50], "zero_shot": [0.5]}
    if with_binding:
        history["binding"] = [0.7]
    fig = plotting.plot_history(history)
    right = fig.axes[1]
    assert len(right.lines) == (2 if with_binding else 1)
    assert (right.get_legend() is not None) == with_binding
    assert list(right.lines[-1].get_ydata()) == ([0.7] if with_binding else [0.5])


def test_plot_rates_draws_each_group_with_its_interval():
    rows = [{"objects": k, "method": m, "rate": r, "low": r - 0.1, "high": r + 0.05}
            for m, base in (("a", 0.9), ("b", 0.3)) for k, r in ((1, base), (4, base - 0.2))]
    ax = plotting.plot_rates(rows)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    a_line = ax.lines[0]
    assert list(a_line.get_ydata()) == pytest.approx([0.9, 0.7])
    assert a_line.get_xdata()[0] != ax.lines[-1].get_xdata()[0]  # offset so the bars do not overlap
    segments = ax.collections[0].get_segments()  # the error bars of group a: from low to high
    assert [tuple(np.round(s[:, 1], 3)) for s in segments] == [(0.8, 0.95), (0.6, 0.75)]


def test_plot_method_rates_orders_methods_by_the_last_group():
    rows = [{"objects": k, "method": m, "rate": r, "low": r - 0.1, "high": r + 0.05}
            for m, one, four in (("a", 0.9, 0.2), ("b", 0.5, 0.8)) for k, r in ((1, one), (4, four))]
    ax = plotting.plot_method_rates(rows)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]  # b is best on 4 objects: top row
    four = ax.lines[-1] if len(ax.containers) < 2 else ax.containers[1].lines[0]
    assert list(four.get_xdata()) == pytest.approx([0.2, 0.8])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1 object", "4 objects"]


def test_show_panels_wraps_into_rows_and_outlines_every_map(images):
    mask = np.zeros((40, 56), dtype=bool)
    mask[10:20, 10:30] = True
    maps = {f"m{i}": torch.rand(4, 6) for i in range(7)}
    fig = plotting.show_panels(images[0], maps, cols=3, outline=mask)
    assert len(fig.axes) == 9  # 3 rows of 3: the image, 7 maps, one empty panel
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["image", *maps]
    assert all(len(ax.collections) == 2 for ax in titled[1:]) and not titled[0].collections


# ----------------------------------------------------------------- saving figures
@pytest.fixture(autouse=True)
def _close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _drawing_functions():
    """Every public function of the plotting modules that draws (its name says so)."""
    import inspect

    from gradeclip_lib.evaluation import plots

    for module in (plotting, plots):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and (name.startswith(("show_", "plot_")) or name in (
                    "overlay", "words_figure", "word_cloud")):
                yield f"{module.__name__.rsplit('.', 1)[-1]}.{name}", fn


def test_every_drawing_function_takes_save_and_dpi():
    import inspect

    found = dict(_drawing_functions())
    assert len(found) >= 17
    for name, fn in found.items():
        params = inspect.signature(fn).parameters
        assert "save" in params and "dpi" in params, name


def _draw(kind, images):
    if kind == "figure":
        return lambda **kw: plotting.show_panels(images[0], {"a": torch.rand(4, 6)}, **kw)
    if kind == "axes":
        return lambda **kw: plotting.plot_curve([1, 3, 2], "x", "y", **kw)
    return lambda **kw: plotting.overlay(images[2], torch.rand(3, 5), **kw)


@pytest.mark.parametrize("kind", ["figure", "axes", "array"])
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_saved_files_follow_the_extension(images, tmp_path, kind, suffix, magic):
    out = tmp_path / "sub" / f"fig{suffix}"
    result = _draw(kind, images)(save=out)
    assert out.read_bytes().startswith(magic)
    if suffix == ".svg":
        assert "<svg" in out.read_text()
    if kind == "array":
        assert isinstance(result, np.ndarray)  # the function still returns what it drew
    if kind == "array" and suffix == ".png":
        assert np.array_equal(np.asarray(Image.open(out)), result)  # pixel for pixel


@pytest.mark.parametrize("kind", ["figure", "axes"])
def test_png_resolution_follows_dpi(images, tmp_path, kind):
    draw = _draw(kind, images)
    low, high = tmp_path / "low.png", tmp_path / "high.png"
    draw(save=low, dpi=60)
    draw(save=high, dpi=180)
    (w1, h1), (w2, h2) = Image.open(low).size, Image.open(high).size
    assert abs(w2 - 3 * w1) <= 6 and abs(h2 - 3 * h1) <= 6


def test_an_unknown_extension_fails_before_drawing(images, tmp_path):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    with pytest.raises(ValueError, match=r"\.png, .*\.svg, \.pdf"):
        plotting.show_panels(images[0], {"a": torch.rand(4, 6)}, save=tmp_path / "fig.tif")
    assert len(plt.get_fignums()) == before and not (tmp_path / "fig.tif").exists()
    with pytest.raises(TypeError, match="figure"):
        gl.save_figure("not a figure", tmp_path / "x.png")


def test_word_cloud_sizes_words_by_their_summed_weight(tmp_path):
    words = gl.TextExplanation("a red circle and a red square", ["a", "red", "circle", "and", "a", "red", "square"],
                               torch.tensor([0.05, 0.2, 0.3, 0.0, 0.05, 0.15, 0.25]), 0.3)
    weights = plotting.cloud_weights(words)
    assert weights == pytest.approx({"a": 0.1, "red": 0.35, "circle": 0.3, "square": 0.25})  # 'and' has none
    layout = plotting.make_cloud(words).layout_
    size = {word: font for (word, _), font, *_ in layout}
    assert set(size) == set(weights)
    by_weight = sorted(weights, key=weights.get)
    assert [size[w] for w in by_weight] == sorted(size[w] for w in by_weight)  # heavier, never smaller
    assert size["red"] > size["a"]
    colours = {word: colour for (word, _), *_, colour in layout}
    assert colours["red"] == plotting._colour(1.0)  # the heaviest word: the darkest red of words_html
    plotting.show_words_and_cloud(words, save=tmp_path / "cloud.pdf")
    assert (tmp_path / "cloud.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="positive weight"):
        plotting.make_cloud(gl.TextExplanation("x", ["x"], torch.tensor([0.0]), 0.1))


def test_show_words_saves_its_static_version(tmp_path):
    words = gl.TextExplanation("a cat", ["a", "cat"], torch.tensor([0.2, 0.8]), 0.3)
    plotting.show_words(words, save=tmp_path / "words.svg")
    assert (tmp_path / "words.svg").read_bytes().startswith(b"<?xml")
    with pytest.raises(ValueError, match="extension"):
        plotting.show_words(words, save=tmp_path / "words.gif")


def test_tables_read_as_html_markdown_and_text():
    from gradeclip_lib.outputs import Table

    table = Table([("a|b", 0.12345, 3), ("<c>", 1.0, 40)], ["method", "area", "n"], digits=2)
    html = table._repr_html_()
    assert "<th>method</th>" in html and "<td>&lt;c&gt;</td>" in html and "<td>0.12</td>" in html
    md = table._repr_markdown_().splitlines()
    assert md[0] == "| method | area | n |" and md[1] == "| --- | --- | --- |"
    assert md[2] == "| a\\|b | 0.12 | 3 |"  # a pipe in a cell does not split it
    wide = Table([("self_attention", "0.1\u00a0±\u00a00.2")], ["method", "area"])._repr_markdown_()
    assert "self_\u200battention" in wide and "0.1 ± 0.2" in wide  # room to break in a PDF column
    text = repr(table).splitlines()
    assert text[0].split() == ["method", "area", "n"] and set(text[1]) == {"-"}
    assert len({len(line) for line in text[2:]}) <= 2 and "1.00" in text[3]
    assert plotting.table_html([(1.5,)], ["x"]) == Table([(1.5,)], ["x"])._repr_html_()


def test_word_weights_have_a_form_for_the_pdf():
    words = gl.TextExplanation("a cat", ["a", "cat"], torch.tensor([0.2, 0.8]), 0.3)
    md = plotting.words_markdown(words)
    assert md == "a (0.20) **cat** (0.80) — cos = 0.300"


def test_the_shapes_notice_reads_in_the_pdf():
    from gradeclip_lib.book import _markdown, shapes_notice

    md = _markdown(shapes_notice("ViT-B-16-quickgelu:openai", "offline"))
    assert "`ViT-B-16-quickgelu:openai`" in md and "**ShapesWorld CLIP**" in md and "<" not in md


def test_size_growth_plots_seconds_and_added_memory_log_log():
    rows = [{"patches": p, "forward_s": 0.001 * p, "grad_eclip_s": 0.0011 * p, "base_mb": 1000.0,
             "forward_peak_mb": 1000 + 0.05 * p, "grad_eclip_peak_mb": 1000 + 0.08 * p} for p in (196, 3072, 47628)]
    rows.append({"width": 9000, "height": 9000, "error": "too large"})  # a failed size is left out
    fig = gl.plotting.plot_size_growth(rows)
    left, right = fig.axes
    assert left.get_xscale() == right.get_xscale() == "log" == left.get_yscale() == right.get_yscale()
    forward, grad_eclip, linear = right.get_lines()
    assert list(grad_eclip.get_ydata()) == pytest.approx([0.08 * p / 1024 for p in (196, 3072, 47628)])
    assert linear.get_ydata()[-1] == pytest.approx(grad_eclip.get_ydata()[-1])  # the slope-1 guide meets the last point
    assert list(left.get_lines()[0].get_xdata()) == [196, 3072, 47628]


def test_plot_randomisation_draws_each_methods_mean_per_stage():

    rows = [{"method": m, "stage": s, "randomised": name, "spearman": torch.tensor([v, v + 0.2]),
             "ssim": torch.tensor([v / 2, v / 2])}
            for m, base in (("a", 1.0), ("b", 0.5)) for s, name in enumerate(["trained", "head", "block 0"])
            for v in [base - 0.3 * s]]
    axes = gl.plotting.plot_randomisation(rows)
    assert len(axes) == 2
    lines = axes[0].get_lines()
    a = next(line for line in lines if line.get_label() == "a")
    assert list(a.get_ydata()) == pytest.approx([1.1, 0.8, 0.5])
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["trained", "head", "block 0"]
    b = next(line for line in axes[1].get_lines() if line.get_label() == "b")
    assert list(b.get_ydata()) == pytest.approx([0.25, 0.1, -0.05])
