import io
import socket
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from risam import create_model, get_config, save_weights
from risam.demo import DemoBackend, build_demo
from risam.explain import explain, render_explanation
from risam.image_io import load_image
from risam.predictor import RISAMPredictor
from risam.viz import overlay_mask

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


def test_image_is_encoded_once_per_upload(weights, photo, monkeypatch):
    predictor = RISAMPredictor.from_checkpoint(weights)
    backend = DemoBackend(predictor)
    calls = []
    original = predictor.set_image
    monkeypatch.setattr(predictor, "set_image", lambda image: calls.append(image) or original(image))
    backend.upload(str(photo))
    backend.segment(str(photo), "the dog")
    backend.segment(str(photo), "the cat")
    assert len(calls) == 1


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_browser_upload_type_click_shows_the_predictors_overlay(weights, photo):
    from playwright.sync_api import sync_playwright

    demo = build_demo(RISAMPredictor.from_checkpoint(weights))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#upload input[type=file]", str(photo))
            page.locator("#preview img").wait_for(timeout=30_000)
            page.get_by_label("Expressions").fill("the dog")
            page.click("#segment")
            overlay = page.locator("#masks img").first
            overlay.wait_for(timeout=30_000)
            response = page.request.get(overlay.get_attribute("src"))
            assert response.ok
            shown = Image.open(io.BytesIO(response.body()))
            browser.close()
    finally:
        demo.close()
    expected = expected_overlay(weights, photo, "the dog")
    np.testing.assert_array_equal(np.asarray(shown.convert("RGB")), np.asarray(expected))
