"""The disk memo that lets `make test` run each long experiment once for both editions: off without its
folder, a hit only for the same function, arguments, weights and library source."""

import pytest
import torch

import gradeclip_lib as gl
from gradeclip_lib import memo
from gradeclip_lib.shapesworld.evaluate import localisation

calls: list = []


@memo.memoized(ignore=("verbose",))
def double(x: torch.Tensor, model=None, scale: int = 2, verbose: bool = False, **options) -> torch.Tensor:
    calls.append(1)
    return x * scale


@pytest.fixture
def memo_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(memo.ENV, str(tmp_path))
    calls.clear()
    return tmp_path


def test_off_without_its_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(memo.ENV, raising=False)
    calls.clear()
    double(torch.ones(2))
    double(torch.ones(2))
    assert len(calls) == 2 and not any(tmp_path.iterdir())


def test_a_repeated_call_is_read_back(memo_dir):
    first = double(torch.arange(3.0), scale=3)
    again = double(torch.arange(3.0), None, 3, verbose=True)  # positional or keyword, an ignored argument changed
    assert torch.equal(first, again) and len(calls) == 1 and len(list(memo_dir.glob("*.pt"))) == 1


def test_any_change_of_an_argument_misses(memo_dir):
    tiny = torch.nn.Linear(2, 2)
    double(torch.ones(2), tiny)
    double(torch.ones(2), tiny)
    assert len(calls) == 1
    double(torch.ones(2) + 1e-6, tiny)  # a tensor's value
    double(torch.ones(2, dtype=torch.float64), tiny)  # its dtype
    with torch.no_grad():
        tiny.weight[0, 0] += 1e-6  # a model's weights
    double(torch.ones(2), tiny)
    double(torch.ones(2), tiny, scale=2, seed=4)  # an option given through **options
    assert len(calls) == 5


def test_an_argument_without_a_content_key_is_computed_every_time(memo_dir):
    double(torch.ones(2), model=object())
    double(torch.ones(2), model=object())
    assert len(calls) == 2 and not any(memo_dir.iterdir())


def test_a_change_of_the_library_source_misses(memo_dir, monkeypatch):
    double(torch.ones(2))
    monkeypatch.setattr(memo, "source_hash", lambda: "another version")
    double(torch.ones(2))
    assert len(calls) == 2


def test_folders_are_keyed_by_their_files(memo_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    (folder / "a.txt").write_text("one")
    key = memo.key_of(double, {"data": folder})
    assert memo.key_of(double, {"data": folder}) == key
    (folder / "a.txt").write_text("two")
    assert memo.key_of(double, {"data": folder}) != key


def test_the_pointing_experiment_is_the_same_read_back(memo_dir):
    clip = gl.load_clip("shapes", pretrained=None)
    computed = localisation(clip, "grad_eclip", n_objects=2, n=4, scene_seed=3)
    files = list(memo_dir.glob("*.pt"))
    read = localisation(clip, "grad_eclip", n_objects=2, n=4, scene_seed=3)
    assert len(files) == 1 and list(memo_dir.glob("*.pt")) == files
    assert torch.equal(computed["pointing"], read["pointing"]) and torch.equal(computed["energy"], read["energy"])
    other = gl.load_clip("shapes", pretrained=None, seed=1)  # other weights: computed again
    localisation(other, "grad_eclip", n_objects=2, n=4, scene_seed=3)
    assert len(list(memo_dir.glob("*.pt"))) == 2


def test_an_evaluation_run_again_writes_the_same_records_without_computing(memo_dir, tmp_path_factory, monkeypatch):
    from gradeclip_lib import evaluation as ev
    from gradeclip_lib.evaluation import run
    from gradeclip_lib.synthetic.folder import export_folder

    work = tmp_path_factory.mktemp("evaluation")
    clip = gl.load_clip("shapes")
    data = export_folder(work / "scenes", 3, seed=7, size=64)
    first = list(ev.records.read_records(ev.evaluate_folder(clip, data, ["grad_eclip", "random"], work / "a.jsonl",
                                                            progress=False)))
    monkeypatch.setattr(run, "explain_targets", None)  # any computation of a map would now fail
    second = list(ev.records.read_records(ev.evaluate_folder(clip, data, ["grad_eclip", "random"], work / "b.jsonl",
                                                             progress=False)))
    assert second == first and len(first) == 6
