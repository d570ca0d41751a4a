"""Quantus's model-parameter randomisation test (`quantus.MPRT`, Quantus 0.6) on the same maps as ours: the
Spearman correlations of `cascading_randomisation` are Quantus's, part by part and scene by scene."""

import numpy as np
import pytest

import gradeclip_lib as gl
from gradeclip_lib.sanity import QuantusView, cascading_randomisation, quantus_explain, stage_names
from gradeclip_lib.synthetic.scenes import make_scenes

quantus = pytest.importorskip("quantus")


@pytest.mark.parametrize("method", ["grad_eclip", "self_attention"])
def test_quantus_mprt_gives_our_spearman_correlations(method):
    tiny = gl.load_clip("shapes")  # trained: its maps, randomised or not, are never constant (Quantus needs that)
    n, seed = 4, 2
    ours = cascading_randomisation(tiny, {method: {"method": method}}, n=n, n_objects=2, scene_seed=80_000, seed=seed)
    scenes = make_scenes(n, seed=80_000, n_objects=2, size=tiny.crop_size)
    phrases = [s.objects[0].phrase for s in scenes]
    view = QuantusView(tiny, phrases, seed=seed)
    x = np.stack([np.asarray(s.image).transpose(2, 0, 1) for s in scenes]).astype(np.float32)
    metric = quantus.MPRT(layer_order="top_down", disable_warnings=True)
    scores = metric(model=view, x_batch=x, y_batch=np.arange(n), a_batch=None, explain_func=quantus_explain,
                    explain_func_kwargs={"method": method}, device="cpu", batch_size=n)
    names = view.part_names()
    theirs = {names[layer]: values for layer, values in scores.items() if layer != "original"}
    assert list(theirs) == stage_names(tiny)  # the same cascade, head first
    by_stage = {row["randomised"]: row["spearman"].numpy() for row in ours}
    for stage, values in theirs.items():
        np.testing.assert_allclose(values, by_stage[stage], atol=1e-6)
    assert not np.isnan(np.concatenate(list(theirs.values()))).any()
    assert min(by_stage[stage_names(tiny)[-1]]) < 0.9  # the randomised model gave other maps
