"""A Gradio page around :class:`~risam.predictor.RISAMPredictor`.

The page calls the methods of :class:`DemoBackend`, plain Python that tests call without a
browser. The image is encoded once per upload (``set_image`` on the upload event); each submit
only runs ``predict``. Errors reach the page as ``gradio.Error`` messages and the server keeps
serving.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from risam.explain import explain, render_explanation
from risam.image_io import ImageInputError, load_image
from risam.predictor import RISAMPredictor
from risam.viz import overlay_mask

MAX_UPLOAD_BYTES = 20_000_000


class DemoBackend:
    """What the page does: validate and encode uploads, segment expressions, build overlays.

    One predictor serves every browser session; it holds the features of one image, keyed by the
    SHA-256 of the uploaded file. A request for another image re-encodes it under a lock, so
    sessions never see each other's features.
    """

    def __init__(self, predictor: RISAMPredictor, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.predictor = predictor
        self.max_upload_bytes = max_upload_bytes
        self.image: Image.Image | None = None
        self.image_key: str | None = None
        self.lock = threading.Lock()

    def upload(self, path: str | None) -> Image.Image | None:
        """Encode the uploaded file at ``path``; return the image the model sees (RGB, EXIF-rotated)."""
        if path is None:
            return None
        with self.lock:
            return self._set_image(path)

    def segment(
        self, path: str | None, text: str
    ) -> tuple[list[tuple[Image.Image, str]], list[dict[str, Any]], Image.Image]:
        """Overlays (with their expression as caption), a record per line of ``text``, and the
        first expression's attention figure (per-word maps and word weights, paper Fig. 1/7).

        Each record holds the expression, its score, its bbox (x0, y0, x1, y1, inclusive) or None,
        and its mask's pixel count.
        """
        if path is None:
            raise gr.Error("Upload an image first.")
        expressions = [line.strip() for line in text.splitlines() if line.strip()]
        if not expressions:
            raise gr.Error("Type an expression describing the region to segment, one per line.")
        with self.lock:
            image = self._set_image(path)
            predictions = self.predictor.predict(expressions)
            figure = render_explanation(image, explain(self.predictor, expressions[0]))
        overlays = [(overlay_mask(image, p.mask), p.text) for p in predictions]
        records = [
            {"text": p.text, "score": round(p.score, 4), "bbox": p.bbox, "mask_pixels": int(p.mask.sum())}
            for p in predictions
        ]
        return overlays, records, figure

    def _set_image(self, path: str) -> Image.Image:
        """Check the file's size, then decode and encode it unless it is the image already encoded."""
        file = Path(path)
        size = file.stat().st_size
        if size > self.max_upload_bytes:
            raise gr.Error(
                f"{file.name}: the file is {size:,} bytes, over the demo's limit of {self.max_upload_bytes:,} bytes."
            )
        key = hashlib.sha256(file.read_bytes()).hexdigest()
        if key != self.image_key:
            try:
                image = load_image(file, max_pixels=self.predictor.max_pixels, name=file.name)
            except ImageInputError as error:
                raise gr.Error(str(error)) from error
            self.predictor.set_image(image)
            self.image, self.image_key = image, key
        return self.image


def build_demo(predictor: RISAMPredictor, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> gr.Blocks:
    """The demo page: an image upload, a box for expressions (one per line), overlays, scores and
    the per-word attention maps of the first expression."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    backend = DemoBackend(predictor, max_upload_bytes)
    with gr.Blocks(title="RISAM referring segmentation", analytics_enabled=False) as demo:
        gr.Markdown("# RISAM\nUpload an image, describe regions in it (one expression per line), press Segment.")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="upload")
                preview = gr.Image(label="Input", type="pil", format="png", interactive=False, elem_id="preview")
                expressions = gr.Textbox(label="Expressions", lines=3, placeholder="the dog on the sofa")
                button = gr.Button("Segment", variant="primary", elem_id="segment")
            with gr.Column():
                gallery = gr.Gallery(label="Masks", format="png", columns=2, elem_id="masks")
                scores = gr.JSON(label="Scores and boxes")
                attention = gr.Image(label="Attention of each word (first expression)", type="pil", format="png")
        upload.upload(backend.upload, inputs=upload, outputs=preview)
        outputs = [gallery, scores, attention]
        button.click(backend.segment, inputs=[upload, expressions], outputs=outputs)
        expressions.submit(backend.segment, inputs=[upload, expressions], outputs=outputs)
    return demo


def launch_demo(
    checkpoint: str | os.PathLike,
    sam_checkpoint: str | os.PathLike | None = None,
    clip_checkpoint: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> None:
    """Serve the demo for a RISAM weights file at http://host:port until interrupted (no share link)."""
    predictor = RISAMPredictor.from_checkpoint(checkpoint, sam_checkpoint, clip_checkpoint)
    demo = build_demo(predictor, max_upload_bytes)
    demo.launch(server_name=host, server_port=port, share=False, ssr_mode=False, max_file_size=max_upload_bytes)
