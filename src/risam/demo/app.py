"""A Gradio page around :class:`~risam.predictor.RISAMPredictor`, bounded by design.

The page calls the methods of :class:`DemoBackend`, plain Python that tests call without a
browser. Each upload is decoded once, shrunk so that its long side is at most
:data:`DISPLAY_SIDE` pixels (the model sees 1024 pixels anyway) and encoded once; that shown
image is what is segmented, so masks, overlays, boxes and pixel counts are in its pixels and no
request's cost grows with the upload's resolution beyond one decode. A request holds at most
:data:`MAX_EXPRESSIONS` expressions of at most :data:`MAX_TEXT_CHARS` characters in all.

Requests go through Gradio's queue: :data:`CONCURRENCY` run at once and up to :data:`QUEUE_SIZE`
more wait; further ones are turned away with a message. Each request segments through the
predictor's stateless calls, with no lock (the encoded features of the last :data:`CACHE_SIZE`
uploads are kept, keyed by the file's SHA-256), so a small request is not held up by a large one. Errors reach
the page as ``gradio.Error`` messages and the server keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from risam.demo.examples import EXAMPLES_DIR, load_examples
from risam.drawing.viz import overlay_mask, shrink_to
from risam.errors import InputError
from risam.explain import explain, render_explanation
from risam.io.download import sha256_of
from risam.io.images import load_image
from risam.predictor import EncodedImage, RISAMPredictor, check_expressions
from risam.registry.files import SHIPPED_MODEL_LIMITS

MAX_UPLOAD_BYTES = 20_000_000
DISPLAY_SIDE = 2048  # uploads are shown and segmented with their long side at most this
MAX_EXPRESSIONS = 16  # per request
MAX_TEXT_CHARS = 4000  # characters of all expressions of a request together
CONCURRENCY = 2  # requests processed at once
QUEUE_SIZE = 16  # requests waiting at most
CACHE_SIZE = 4  # uploads whose encoded features are kept

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShownImage:
    """An upload as the demo works on it: the RGB image shown (long side at most the display side)
    and its encoded features, with masks produced at its size."""

    image: Image.Image
    encoded: EncodedImage


@contextlib.contextmanager
def readable_errors() -> Iterator[None]:
    """Turn every error of the block into a ``gradio.Error`` whose message the page shows."""
    try:
        yield
    except gr.Error:
        raise
    except InputError as error:  # a bad image, expression, ...: its message names it and what would be right
        raise gr.Error(str(error)) from error
    except OSError as error:
        raise gr.Error(f"The upload could not be read ({error}); upload it again.") from error
    except Exception as error:
        LOG.exception("demo request failed")
        raise gr.Error(f"The request failed ({type(error).__name__}: {error}); the server keeps serving.") from error


class DemoBackend:
    """What the page does: validate, decode and encode uploads, segment expressions, build overlays.

    One predictor serves every browser session through its stateless calls (each request passes its
    image's EncodedImage), so sessions never see each other's features and need no lock.
    """

    def __init__(
        self,
        predictor: RISAMPredictor,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        display_side: int = DISPLAY_SIDE,
        max_expressions: int = MAX_EXPRESSIONS,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.predictor = predictor
        self.max_upload_bytes = max_upload_bytes
        self.display_side = display_side
        self.max_expressions = max_expressions
        self.cache_size = cache_size
        self._cache: OrderedDict[str, ShownImage] = OrderedDict()
        self._cache_lock = threading.Lock()

    def upload(self, path: str | None) -> Image.Image | None:
        """Decode and encode the uploaded file at ``path``; return the image shown (RGB, EXIF-rotated,
        long side at most ``display_side``)."""
        if path is None:
            return None
        with readable_errors():
            return self.prepare(path).image

    def segment(
        self, path: str | None, text: str
    ) -> tuple[list[tuple[Image.Image, str]], list[dict[str, Any]], Image.Image]:
        """Overlays (with their expression as caption), a record per line of ``text``, and the
        first expression's attention figure (per-word maps and word weights, paper Fig. 1/7).

        Each record holds the expression, its score, its bbox (x0, y0, x1, y1, inclusive) or None,
        and its mask's pixel count, in pixels of the shown image.
        """
        if path is None:
            raise gr.Error("Upload an image first.")
        if len(text) > MAX_TEXT_CHARS:
            raise gr.Error(f"The expressions have {len(text):,} characters; at most {MAX_TEXT_CHARS:,} are read.")
        expressions = [line.strip() for line in text.splitlines() if line.strip()]
        if not expressions:
            raise gr.Error("Type an expression describing the region to segment, one per line.")
        with readable_errors():
            check_expressions(expressions, self.max_expressions)
            shown = self.prepare(path)
            predictions = self.predictor.predict(expressions, shown.encoded)
            explanation = explain(self.predictor, expressions[0], encoded=shown.encoded)
            figure = render_explanation(shown.image, explanation)
            overlays = [(overlay_mask(shown.image, p.mask), p.text) for p in predictions]
        records = [
            {"text": p.text, "score": round(p.score, 4), "bbox": p.bbox, "mask_pixels": int(p.mask.sum())}
            for p in predictions
        ]
        return overlays, records, figure

    def prepare(self, path: str) -> ShownImage:
        """The shown image and features of the file at ``path``: from the cache, or checked for size,
        decoded once, shrunk and encoded (outside ``lock``)."""
        file = Path(path)
        size = file.stat().st_size
        if size > self.max_upload_bytes:
            raise gr.Error(
                f"{file.name}: the file is {size:,} bytes, over the demo's limit of {self.max_upload_bytes:,} bytes."
            )
        key = sha256_of(file)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        image = shrink_to(load_image(file, max_pixels=self.predictor.max_pixels, name=file.name), self.display_side)
        shown = ShownImage(image, self.predictor.encode(image))
        with self._cache_lock:
            self._cache[key] = shown
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return shown


def build_demo(predictor: RISAMPredictor, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> gr.Blocks:
    """The demo page: an image upload, a gallery of RefShapes examples (a click loads the image and its
    suggested sentences), a box for expressions (one per line), overlays, scores and the per-word
    attention maps of the first expression; requests queued as the module says."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    backend = DemoBackend(predictor, max_upload_bytes)
    examples = load_examples()
    gr.set_static_paths([EXAMPLES_DIR])
    limits = (
        f"Images up to {predictor.max_pixels:,} pixels and {max_upload_bytes:,} bytes are shown and segmented "
        f"at most {DISPLAY_SIDE} px on the long side (boxes and pixel counts are in those pixels); up to "
        f"{MAX_EXPRESSIONS} expressions per request. {CONCURRENCY} requests run at a time and up to "
        f"{QUEUE_SIZE} more wait in line."
    )
    with gr.Blocks(title="RISAM referring segmentation", analytics_enabled=False) as demo:
        gr.Markdown(
            "# RISAM\nUpload an image or pick an example, describe regions in it (one expression per line), "
            f"press Segment.\n\n{SHIPPED_MODEL_LIMITS}\n\n{limits}",
            elem_id="about",
        )
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="upload")
                preview = gr.Image(label="Input", type="pil", format="png", interactive=False, elem_id="preview")
                expressions = gr.Textbox(
                    label="Expressions", lines=3, placeholder="the dog on the sofa", max_length=MAX_TEXT_CHARS
                )
                button = gr.Button("Segment", variant="primary", elem_id="segment")
                gallery = gr.Gallery(
                    value=[(str(path), sentences[0]) for path, sentences in examples],
                    label="RefShapes examples: click one for its image and suggested sentences",
                    columns=len(examples),
                    height=230,
                    allow_preview=False,
                    interactive=False,
                    elem_id="examples",
                )
            with gr.Column():
                masks = gr.Gallery(label="Masks", format="png", columns=2, elem_id="masks")
                scores = gr.JSON(label="Scores and boxes")
                attention = gr.Image(label="Attention of each word (first expression)", type="pil", format="png")

        def choose_example(selected: gr.SelectData) -> tuple[str, Image.Image | None, str]:
            path, sentences = examples[selected.index]
            return str(path), backend.upload(str(path)), "\n".join(sentences)

        gallery.select(choose_example, inputs=None, outputs=[upload, preview, expressions])
        upload.upload(backend.upload, inputs=upload, outputs=preview)
        outputs = [masks, scores, attention]
        button.click(backend.segment, inputs=[upload, expressions], outputs=outputs)
        expressions.submit(backend.segment, inputs=[upload, expressions], outputs=outputs)
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)


def launch_demo(
    checkpoint: str | os.PathLike | None = None,
    sam_checkpoint: str | os.PathLike | None = None,
    clip_checkpoint: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    random_encoders: bool = False,
    precision: str = "auto",
    compile: bool = False,
) -> None:
    """Serve the demo at http://host:port until interrupted (no share link), for a RISAM weights file, a
    shipped model's name or an ``hf-hub:`` name (None: the built-in ``risam_tiny_refshapes``), its frozen
    encoders in ``precision`` ("auto", "fp32" or "bf16": :mod:`risam.precision`), the image encoder compiled if
    ``compile``."""
    predictor = RISAMPredictor.from_checkpoint(
        checkpoint,
        sam_checkpoint,
        clip_checkpoint,
        random_encoders=random_encoders,
        precision=precision,
        compile=compile,
    )
    demo = build_demo(predictor, max_upload_bytes)
    demo.launch(server_name=host, server_port=port, share=False, ssr_mode=False, max_file_size=max_upload_bytes)
