"""Photos at their own size: the attention of the image tower never holds a tokens x tokens matrix, and the
maps equal those of the full-attention computation."""

import contextlib

import pytest
import torch
from conftest import make_tiny_clip, random_image
from torch.profiler import ProfilerActivity, profile

import gradeclip_lib as gl
from gradeclip_lib.models import towers


@pytest.fixture(scope="module")
def wide():
    return make_tiny_clip(patch=8, image_size=32, width=64, heads=4, vision_layers=3)


def native_attention_calls(monkeypatch) -> list:
    """Count the calls of nn.MultiheadAttention's inference fast path (which materialises the weights)."""
    calls = []
    native = torch._native_multi_head_attention

    def counted(*args, **kwargs):
        calls.append(1)
        return native(*args, **kwargs)

    monkeypatch.setattr(torch, "_native_multi_head_attention", counted)
    return calls


@pytest.mark.parametrize("method", ["grad_eclip", "self_attention", "mask_clip", "grad_cam"])
def test_maps_equal_the_full_attention_computation(wide, monkeypatch, method):
    photo = random_image(200, 264, 5)  # 25 x 33 patches, not square
    calls = native_attention_calls(monkeypatch)
    linear = gl.explain(wide, photo, ["a dog", "a cat"], method=method)
    assert not calls  # the fast path never ran
    monkeypatch.setattr(towers, "memory_linear_attention", contextlib.nullcontext)
    full = gl.explain(wide, photo, ["a dog", "a cat"], method=method)
    assert calls  # the reference did go through the fast path
    assert linear.maps.shape == (2, 25, 33)
    assert torch.allclose(linear.maps, full.maps, atol=1e-5, rtol=1e-4)
    assert torch.allclose(linear.scores, full.scores, atol=1e-6)


def largest_allocation(fn) -> int:
    """The largest single CPU allocation (bytes) of any operator while ``fn`` runs."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(event.cpu_memory_usage for event in prof.events())


@pytest.mark.parametrize("options", [{}, {"mode": "paper"}], ids=["forward", "paper"])
def test_no_tokens_by_tokens_matrix_is_allocated(wide, options):
    photo = random_image(512, 768, 6)  # 64 x 96 = 6 144 patches
    tokens, heads = 1 + 64 * 96, 4
    attention = tokens * tokens * heads * 4  # one block's weights, fp32: 604 MB (one head: 151 MB)
    biggest = largest_allocation(lambda: gl.explain(wide, photo, "a dog", **options))
    assert biggest < attention / 20, f"an allocation of {biggest / 2**20:.0f} MB"
    assert torch.backends.mha.get_fastpath_enabled()  # the switch is restored for everyone else


def test_the_fast_path_switch_is_restored_after_an_error(wide):
    with pytest.raises(RuntimeError), towers.memory_linear_attention():
        assert not torch.backends.mha.get_fastpath_enabled()
        raise RuntimeError("boom")
    assert torch.backends.mha.get_fastpath_enabled()


@pytest.mark.parametrize("method", ["rollout", "game", "clip_surgery"])
def test_a_method_that_holds_the_attention_is_refused_before_it_starts(wide, monkeypatch, method):
    from gradeclip_lib.methods import common, memory

    photo = random_image(400, 528, 7)  # 50 x 66 patches: 3 301 tokens
    need = memory.attention_bytes(gl.IMAGE_METHODS[method].quadratic, 4, 50 * 66 + 1)
    monkeypatch.setattr(memory, "free_memory", lambda device: int(need / 2))

    def no_forward(*args, **kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(common, "vision_pass", no_forward)
    for module in ("attention_maps", "game", "clip_surgery"):
        monkeypatch.setattr(f"gradeclip_lib.methods.{module}.vision_pass", no_forward)
    with pytest.raises(gl.ImageTooLargeError) as caught:
        gl.explain(wide, photo, "a dog", method=method)
    message = str(caught.value)
    assert "50 x 66 grid" in message and "grad_eclip" in message and method not in message.split("method whose")[1]
    width, height = (int(v) for v in message.split("resized to about ")[1].split(" px")[0].split(" x "))
    assert width / height == pytest.approx(528 / 400, rel=0.05)
    monkeypatch.undo()
    monkeypatch.setattr(memory, "free_memory", lambda device: int(need / 2))
    small = gl.explain(wide, random_image(height, width, 8), "a dog", method=method)  # the size it proposed fits
    assert small.maps.shape[-2:] == (height // 8, width // 8)
    linear = gl.explain(wide, photo, "a dog", method="grad_eclip")  # what a linear method plans fits
    assert linear.maps.shape == (1, 50, 66)


def test_the_memory_a_method_declares_covers_what_it_allocates(wide):
    from gradeclip_lib.methods import memory

    photo = random_image(240, 320, 9)  # 30 x 40 patches
    for method in ("rollout", "game", "clip_surgery"):
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            gl.explain(wide, photo, "a dog", method=method)
        tokens_squared = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage >= 1201**2 * 4]
        declared = memory.attention_bytes(gl.IMAGE_METHODS[method].quadratic, 4, 1201)
        assert max(tokens_squared) <= declared, method  # no single tokens x tokens allocation beyond the budget


def test_growth_exponents_are_the_slopes_in_log_log():
    from gradeclip_lib.bench_sizes import growth_exponent

    rows = [{"patches": p, "grad_eclip_s": 0.002 * p**1.5, "base_mb": 1000.0, "grad_eclip_peak_mb": 1000 + 0.1 * p}
            for p in (500, 1200, 3072, 7500, 47628)]
    assert growth_exponent(rows, "grad_eclip_s") == pytest.approx(1.5)
    assert growth_exponent(rows, "grad_eclip_peak_mb") == pytest.approx(1.0)  # the memory above the model's
    assert growth_exponent(rows, "grad_eclip_s", min_patches=10**6) != growth_exponent(rows, "grad_eclip_s")


def test_a_size_is_measured_in_a_fresh_process():
    from gradeclip_lib.bench_sizes import measure, report_sizes

    row = measure(100, 60)  # ViT-B/16, random weights: rounded to 96 x 64 px, a 4 x 6 grid
    assert row["grid"] == [4, 6] and row["patches"] == 24
    assert 0 < row["base_mb"] <= min(row["forward_peak_mb"], row["grad_eclip_peak_mb"])
    assert row["forward_s"] > 0 and row["grad_eclip_s"] > 0
    assert "| 100 x 60 | 4 x 6 | 24 |" in report_sizes([row])


def test_rise_builds_its_masks_a_slice_at_a_time():
    from gradeclip_lib.methods.rise import RiseMasks, rise_masks

    full = rise_masks(12, 4, 0.5, (37, 53), seed=3)
    masks = RiseMasks(12, 4, 0.5, (37, 53), seed=3)
    assert torch.equal(torch.cat([masks[0:5], masks[5:12]]), full) and full.shape == (12, 1, 37, 53)


def test_rise_sends_fewer_masks_at_once_for_a_large_image(wide, monkeypatch):
    from gradeclip_lib.methods import rise

    assert rise.masks_per_pass(100, 1, 224 * 224, "cpu") == 100 or rise.free_memory("cpu") < 6e9
    monkeypatch.setattr(rise, "free_memory", lambda device: 10 * rise.BYTES_PER_PIXEL * 4032 * 3024)
    assert rise.masks_per_pass(100, 1, 4032 * 3024, "cpu") == 5
    assert rise.masks_per_pass(100, 2, 4032 * 3024, "cpu") == 2
    assert rise.masks_per_pass(100, 1, 40_000 * 40_000, "cpu") == 1  # never zero
    photo = random_image(64, 96, 4)
    many = gl.explain(wide, photo, "a dog", method="rise", n_masks=40, batch=40)
    monkeypatch.setattr(rise, "free_memory", lambda device: 2 * rise.BYTES_PER_PIXEL * 64 * 96 * 3)  # 3 at once
    few = gl.explain(wide, photo, "a dog", method="rise", n_masks=40, batch=40)
    assert torch.allclose(many.maps, few.maps, atol=1e-5)


def test_any_method_is_refused_before_it_starts_when_even_linear_memory_would_not_fit(wide, monkeypatch):
    from gradeclip_lib.methods import memory

    photo = random_image(400, 528, 7)  # 3 301 tokens of width 64
    need = memory.planned_bytes(gl.IMAGE_METHODS["grad_eclip"], 4, 64, 50 * 66 + 1)
    monkeypatch.setattr(memory, "free_memory", lambda device: int(need / 3))
    with pytest.raises(gl.ImageTooLargeError, match="'grad_eclip' on a 50 x 66 grid") as caught:
        gl.explain(wide, photo, "a dog")
    width, height = (int(v) for v in str(caught.value).split("resized to about ")[1].split(" px")[0].split(" x "))
    assert gl.explain(wide, random_image(height, width, 8), "a dog").maps.shape[-2:] == (height // 8, width // 8)
    with pytest.raises(gl.ImageTooLargeError, match="batch_size=1"):  # two pairs need twice as much
        gl.explain(wide, random_image(height, width, 8), ["a dog", "a cat"])
