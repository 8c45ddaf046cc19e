"""How long a small demo request takes while a 49-megapixel upload is being processed (CPU).

One thread segments EXPRESSIONS expressions on a fresh PIXELS-pixel PNG (a flat colour with
shapes, see ``segment_memory.py``); meanwhile, after DELAY seconds, the main thread sends small
requests one after another, each a fresh 640 x 480 upload with one expression, until the large
request is answered. Two drivers: ``backend`` calls :class:`risam.demo.DemoBackend` (the functions
the page calls) from threads, as the queue's workers do, without the web server; ``server`` serves
:func:`risam.demo.build_demo` on localhost and sends the requests with ``gradio_client`` through
Gradio's queue (uploads, the queue's concurrency and the PNG encoding of every output included).
Prints one JSON object: the small request's latency alone and during the large one, the large
one's time, and the process's peak RSS (server and clients together) against its RSS after a
warm-up.

    python -m benchmarks.demo_concurrency --model risam_tiny --driver server
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.entry import run
from benchmarks.segment_many import write_photo
from benchmarks.segment_memory import image_size, write_flat_png, write_weights
from risam.demo import DemoBackend, build_demo
from risam.predictor import RISAMPredictor

Segment = Callable[[Path, str], object]
DRIVERS = {
    "backend": "DemoBackend from threads (no web server)",
    "server": "build_demo served on localhost, gradio_client through the queue",
}


def timed(segment: Segment, path: Path, text: str) -> float:
    """Seconds a segment request for ``path`` and ``text`` takes."""
    start = time.perf_counter()
    segment(path, text)
    return time.perf_counter() - start


@contextlib.contextmanager
def driver(kind: str, predictor: RISAMPredictor) -> Iterator[Callable[[], Segment]]:
    """A factory of segment functions (one per thread) that go through ``kind``: 'backend' or 'server'."""
    if kind == "backend":
        backend = DemoBackend(predictor)
        yield lambda: lambda path, text: backend.segment(str(path), text)
        return
    from gradio_client import Client, handle_file

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = build_demo(predictor)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False, quiet=True)

    def client() -> Segment:
        connection = Client(f"http://127.0.0.1:{port}/", verbose=False)
        return lambda path, text: connection.predict(handle_file(str(path)), text, api_name="/segment")

    try:
        yield client
    finally:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is for the JSON
            demo.close()


def rss_gib() -> float:
    """The resident memory of this process now, GiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="risam_tiny")
    parser.add_argument("--pixels", type=int, default=49_000_000)
    parser.add_argument("--expressions", type=int, default=16, help="expressions of the large request")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds between the large and the first small")
    parser.add_argument("--driver", choices=["backend", "server"], default="backend")
    args = parser.parse_args()
    width, height = image_size(args.pixels)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_weights(args.model, root / "model.safetensors")
        write_flat_png(root / "large.png", width, height)
        smalls = []
        for seed in range(40):
            smalls.append(root / f"small{seed}.jpg")
            write_photo(smalls[-1], 640, 480, seed=seed)
        predictor = RISAMPredictor.from_checkpoint(root / "model.safetensors", random_encoders=True)
        with driver(args.driver, predictor) as make:
            segment = make()
            segment(smalls.pop(), "warm up")
            alone = timed(segment, smalls.pop(), "the red circle")
            rss_before = rss_gib()
            large: dict[str, float] = {}

            def segment_large() -> None:
                texts = "\n".join(f"the shape number {i}" for i in range(args.expressions))
                large["seconds"] = timed(make(), root / "large.png", texts)

            worker = threading.Thread(target=segment_large)
            worker.start()
            time.sleep(args.delay)
            during = []
            while worker.is_alive() and smalls:
                during.append(timed(segment, smalls.pop(), "the red circle"))
            worker.join()
    print(
        json.dumps(
            {
                "benchmark": "demo_concurrency",
                "driver": DRIVERS[args.driver],
                "model": args.model,
                "large_request": f"{width}x{height} PNG, {width * height / 1e6:.1f} MP, {args.expressions} expressions",
                "small_request": "640x480 JPEG, 1 expression, a fresh upload each time",
                "small_alone_s": round(alone, 2),
                "small_during_large_s": [round(value, 2) for value in during],
                "small_during_large_max_s": round(max(during, default=float("nan")), 2),
                "large_s": round(large["seconds"], 2),
                "rss_after_warm_up_gib": round(rss_before, 3),
                "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
