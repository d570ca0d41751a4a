"""Chapters 1-3's subject: CLIP on the sample photographs when its weights load, otherwise the trained
ShapesWorld CLIP on its scenes, never random weights; every field usable by the same cells."""

import pytest
from conftest import make_tiny_clip

from gradeclip_lib import book
from gradeclip_lib.errors import WeightsUnavailableError


@pytest.fixture
def calls(monkeypatch):
    """`load_clip` as the book calls it: the book's model raises as offline, "shapes" loads for real."""
    seen = []
    real = book.load_clip

    def load_clip(name, **kwargs):
        seen.append((name, kwargs))
        if name == "shapes":
            return real(name, **kwargs)
        raise WeightsUnavailableError("no internet")

    monkeypatch.setattr(book, "load_clip", load_clip)
    return seen


def test_offline_the_pages_show_the_trained_shapes_model_on_its_scenes(calls):
    subject = book.book_subject("ViT-B-16-quickgelu:openai")
    assert not subject.photos and subject.clip.pretrained is not None  # trained weights, not random ones
    assert [name for name, _ in calls] == ["ViT-B-16-quickgelu:openai", "shapes"]
    assert all("pretrained" not in kwargs for _, kwargs in calls)  # nothing asked for random weights
    assert set(subject.captions) == set(subject.images) and subject.main == "two objects"
    assert all(im.size == (subject.clip.crop_size,) * 2 for name, im in subject.images.items() if name != "wide")
    width, height = subject.images[subject.wide].size
    assert width == 2 * height
    assert len(subject.crowd_prompts) == 3 and len(set(subject.parts)) == 2
    assert subject.parts[0] in subject.caption and subject.parts[1] in subject.caption
    assert len(subject.classes) == 30 and "{}" in subject.template
    tokens = subject.clip.tokenize([subject.sentence, *subject.sentences, *subject.crowd_prompts])
    assert tokens.shape[0] == 8  # every text is in the ShapesWorld vocabulary (an unknown word raises)
    right, swapped, partial, absent = subject.sentences
    assert sorted(right.split()) == sorted(swapped.split()) and right != swapped
    assert not set(absent.split()) & (set(right.split()) - {"a", "and"})


def test_with_weights_the_pages_show_photographs(monkeypatch):
    tiny = make_tiny_clip()
    monkeypatch.setattr(book, "load_clip", lambda name, **kwargs: tiny)
    subject = book.book_subject("any")
    assert subject.photos and subject.clip is tiny and subject.main == "chelsea"
    assert set(subject.captions) == set(subject.images) and subject.crowd in subject.images
    assert subject.classes is None  # ImageNet's 1 000
    width, height = subject.images[subject.wide].size
    assert width > height


def test_a_photo_section_gets_none_offline_and_no_box(calls):
    assert book.photo_subject("ViT-B-16-quickgelu:openai") is None
    assert [name for name, _ in calls] == ["ViT-B-16-quickgelu:openai"]  # no fallback model loaded
