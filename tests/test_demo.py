import contextlib
import io
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from risam import create_model, get_config, save_weights
from risam.demo import DemoBackend, build_demo
from risam.demo.app import DISPLAY_SIDE, MAX_EXPRESSIONS, MAX_TEXT_CHARS
from risam.demo.examples import load_examples
from risam.drawing.viz import overlay_mask, shrink_to
from risam.explain import explain, render_explanation
from risam.io.images import load_image
from risam.predictor import RISAMPredictor
from risam.registry.files import DEFAULT_PRETRAINED, SHIPPED_MODEL_LIMITS, pretrained_path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    overrides = {"image_encoder.freeze": False, "text_encoder.freeze": False}
    model = create_model("risam_tiny", overrides=overrides)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(model.trainable_state_dict(), get_config("risam_tiny", overrides), path)
    return path


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (70, 110, 3), dtype=np.uint8)).save(path)
    return path


def expected_overlay(weights: Path, image: Path, text: str) -> Image.Image:
    """The overlay of a fresh predictor's mask for ``text`` on ``image``."""
    predictor = RISAMPredictor.from_checkpoint(weights)
    predictor.set_image(image)
    return overlay_mask(load_image(image), predictor.predict(text).mask)


def test_segment_returns_the_predictors_overlays_and_boxes(weights, photo):
    predictor = RISAMPredictor.from_checkpoint(weights)
    backend = DemoBackend(predictor)
    preview = backend.upload(str(photo))
    assert preview.size == (110, 70)
    overlays, records, figure = backend.segment(str(photo), "the dog\n\n  the cat on the left \n")
    assert [caption for _, caption in overlays] == ["the dog", "the cat on the left"]
    reference = RISAMPredictor.from_checkpoint(weights)
    reference.set_image(photo)
    for (overlay, text), record in zip(overlays, records, strict=True):
        expected = reference.predict(text)
        np.testing.assert_array_equal(np.asarray(overlay), np.asarray(overlay_mask(load_image(photo), expected.mask)))
        assert record["bbox"] == expected.bbox
        assert record["mask_pixels"] == int(expected.mask.sum())
        assert record["score"] == pytest.approx(expected.score, abs=1e-4)
    expected_figure = render_explanation(load_image(photo), explain(reference, "the dog"))
    np.testing.assert_array_equal(np.asarray(figure), np.asarray(expected_figure))


def test_image_is_encoded_once_per_upload(weights, photo):
    predictor = RISAMPredictor.from_checkpoint(weights)
    backend = DemoBackend(predictor)
    calls = []
    predictor.model.image_encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    backend.upload(str(photo))
    backend.segment(str(photo), "the dog")
    backend.segment(str(photo), "the cat")
    assert calls == [1]


def test_bad_requests_give_readable_errors_and_the_next_request_works(weights, photo, tmp_path):
    backend = DemoBackend(RISAMPredictor.from_checkpoint(weights), max_upload_bytes=photo.stat().st_size)
    text_file = tmp_path / "notes.png"
    text_file.write_bytes(b"plain text")
    with pytest.raises(gr.Error, match=r"notes\.png: not an image"):
        backend.upload(str(text_file))
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(big)
    with pytest.raises(gr.Error, match=r"big\.png: the file is [\d,]+ bytes, over the demo's limit"):
        backend.upload(str(big))
    with pytest.raises(gr.Error, match="Type an expression"):
        backend.segment(str(photo), "  \n ")
    with pytest.raises(gr.Error, match="Upload an image first"):
        backend.segment(None, "the dog")
    overlays, _, _ = backend.segment(str(photo), "the dog")
    expected = expected_overlay(weights, photo, "the dog")
    np.testing.assert_array_equal(np.asarray(overlays[0][0]), np.asarray(expected))


def test_expressions_per_request_and_their_length_are_bounded(weights, photo):
    backend = DemoBackend(RISAMPredictor.from_checkpoint(weights))
    lines = "\n".join(f"shape {i}" for i in range(MAX_EXPRESSIONS + 1))
    with pytest.raises(gr.Error, match=rf"{MAX_EXPRESSIONS + 1} expressions given; at most {MAX_EXPRESSIONS} are"):
        backend.segment(str(photo), lines)
    with pytest.raises(gr.Error, match=f"at most {MAX_TEXT_CHARS:,} are read"):
        backend.segment(str(photo), "a" * (MAX_TEXT_CHARS + 1))
    overlays, records, _ = backend.segment(str(photo), lines.rsplit("\n", 1)[0])
    assert len(overlays) == len(records) == MAX_EXPRESSIONS


def test_unexpected_errors_reach_the_page_readably(weights, photo, monkeypatch):
    predictor = RISAMPredictor.from_checkpoint(weights)
    backend = DemoBackend(predictor)

    def broken(*_args, **_kwargs):
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(predictor, "predict", broken)
    with pytest.raises(gr.Error, match=r"The request failed \(RuntimeError: out of cheese\)"):
        backend.segment(str(photo), "the dog")
    monkeypatch.undo()
    assert backend.segment(str(photo), "the dog")[1][0]["text"] == "the dog"


def test_uploads_are_shown_and_segmented_at_a_bounded_size(weights, tmp_path):
    ramp = np.linspace(0, 255, 2600, dtype=np.uint8)
    wide = tmp_path / "wide.png"
    Image.fromarray(np.stack([np.tile(ramp, (300, 1))] * 3, axis=2)).save(wide)
    backend = DemoBackend(RISAMPredictor.from_checkpoint(weights))
    shown = backend.upload(str(wide))
    assert shown.size == (DISPLAY_SIDE, 236)
    overlays, records, figure = backend.segment(str(wide), "the bright end")
    reference = RISAMPredictor.from_checkpoint(weights)
    reference.set_image(shrink_to(load_image(wide), DISPLAY_SIDE))
    expected = reference.predict("the bright end")
    assert expected.mask.shape == (236, DISPLAY_SIDE)
    np.testing.assert_array_equal(np.asarray(overlays[0][0]), np.asarray(overlay_mask(shown, expected.mask)))
    assert records[0]["bbox"] == expected.bbox and records[0]["mask_pixels"] == int(expected.mask.sum())
    expected_figure = render_explanation(shown, explain(reference, "the bright end"))
    np.testing.assert_array_equal(np.asarray(figure), np.asarray(expected_figure))
    small = DemoBackend(RISAMPredictor.from_checkpoint(weights), display_side=64)
    assert small.upload(str(wide)).size == (64, 7)
    assert small.segment(str(wide), "the dog")[0][0][0].size == (64, 7)


def test_concurrent_requests_each_get_their_own_answers(weights, tmp_path):
    rng = np.random.default_rng(5)
    images = []
    for index, (height, width) in enumerate([(70, 110), (96, 64), (50, 50)]):
        path = tmp_path / f"image{index}.png"
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
        images.append(path)
    requests = [(images[i % 3], f"the shape number {i}\nthe thing {i % 5}") for i in range(30)]
    reference = RISAMPredictor.from_checkpoint(weights)
    expected = {}
    for path in images:
        reference.set_image(path)
        for text in (text for image, text in requests if image == path):
            expected[path, text] = reference.predict(text.splitlines())  # as the backend asks: both lines at once
    # A cache of 2 for 3 images: uploads are evicted and encoded again while other requests predict.
    backend = DemoBackend(RISAMPredictor.from_checkpoint(weights), cache_size=2)
    start = threading.Barrier(len(requests))

    def run(request):
        start.wait()
        return backend.segment(str(request[0]), request[1])

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        answers = list(pool.map(run, requests))
    for (path, text), (overlays, records, _) in zip(requests, answers, strict=True):
        image = load_image(path)
        for (overlay, caption), record, prediction in zip(overlays, records, expected[path, text], strict=True):
            assert caption == record["text"] == prediction.text
            assert record["bbox"] == prediction.bbox and record["mask_pixels"] == int(prediction.mask.sum())
            np.testing.assert_array_equal(np.asarray(overlay), np.asarray(overlay_mask(image, prediction.mask)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


needs_chromium = pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium")


@contextlib.contextmanager
def served_page(predictor: RISAMPredictor):
    """A Chromium page on the demo of ``predictor``, served on a free local port for the block."""
    from playwright.sync_api import sync_playwright

    demo = build_demo(predictor)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            yield page
            browser.close()
    finally:
        demo.close()


def segment_and_fetch_first_overlay(page) -> Image.Image:
    """Press Segment and download the first overlay the page shows."""
    page.click("#segment")
    overlay = page.locator("#masks img").first
    overlay.wait_for(timeout=30_000)
    response = page.request.get(overlay.get_attribute("src"))
    assert response.ok
    return Image.open(io.BytesIO(response.body()))


@needs_chromium
def test_browser_upload_type_click_shows_the_predictors_overlay(weights, photo):
    with served_page(RISAMPredictor.from_checkpoint(weights)) as page:
        page.set_input_files("#upload input[type=file]", str(photo))
        page.locator("#preview img").wait_for(timeout=30_000)
        page.get_by_label("Expressions").fill("the dog")
        shown = segment_and_fetch_first_overlay(page)
    expected = expected_overlay(weights, photo, "the dog")
    np.testing.assert_array_equal(np.asarray(shown.convert("RGB")), np.asarray(expected))


@needs_chromium
def test_browser_without_a_checkpoint_opens_with_the_shipped_model_and_its_examples():
    image, sentences = load_examples()[0]
    with served_page(RISAMPredictor.from_checkpoint(None)) as page:  # what `risam demo` with no arguments serves
        about = " ".join(page.locator("#about").inner_text().split())
        page.locator("#examples img").first.click()
        page.locator("#preview img").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelector('textarea').value.length > 0", timeout=30_000)
        typed = page.get_by_label("Expressions").input_value()
        shown = segment_and_fetch_first_overlay(page)
    assert " ".join(SHIPPED_MODEL_LIMITS.split()) in about
    assert typed.splitlines() == sentences
    expected = expected_overlay(pretrained_path(DEFAULT_PRETRAINED), image, sentences[0])
    np.testing.assert_array_equal(np.asarray(shown.convert("RGB")), np.asarray(expected))
