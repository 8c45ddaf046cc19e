"""Downloads against a local HTTP server on 127.0.0.1 that the tests start: a full transfer, an interrupted one
that resumes, a server that ignores ranges, a wrong SHA-256, a missing file, no server; `risam download`,
"download" in place of an encoder file, and `risam data download` filling a data root that passes the check."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from official_formats import meta_sam, save_openai_jit, small_openai_clip
from risam import create_model, get_config
from risam.cli import main
from risam.config import ConfigError
from risam.data.refshapes import generate_refshapes
from risam.io.download import DownloadError, RemoteFile, fetch
from risam.registry.files import CLIP_WEIGHTS, SAM_WEIGHTS

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


@dataclass
class Server:
    """What the local server serves (path -> bytes), how it misbehaves, and the requests it saw."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    cuts: dict[str, int] = field(default_factory=dict)  # the next N GETs: full length announced, half sent, closed
    ignore_range: set[str] = field(default_factory=set)  # answers 200 with the whole file even to a Range
    wrong_range: set[str] = field(default_factory=set)  # answers a Range with 206 and the file from byte 0
    no_length: set[str] = field(default_factory=set)  # sends no Content-Length
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    state = Server()
    monkeypatch.setenv("no_proxy", "127.0.0.1")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            state.requests.append((path, self.headers.get("Range")))
            body = state.files.get(path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and path in state.wrong_range:
                self.send_response(206)
                self.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{len(body)}")
            elif match and path not in state.ignore_range:
                start = int(match.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            if path not in state.no_length:
                self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if state.cuts.get(path, 0) > 0:
                state.cuts[path] -= 1
                self.wfile.write(body[start : start + (len(body) - start) // 2])
                self.close_connection = True
                return
            self.wfile.write(body[start:])

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _remote(server: Server, name: str, data: bytes, sha256: str | None = "right") -> RemoteFile:
    server.files[f"/{name}"] = data
    return RemoteFile(f"{server.base}/{name}", name, _sha256(data) if sha256 == "right" else sha256)


def test_a_full_download_is_checked_and_renamed_into_place_with_the_users_umask(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD)
    previous = os.umask(0o027)
    try:
        path = fetch(remote, tmp_path / "cache", progress=False)
    finally:
        os.umask(previous)
    assert path == tmp_path / "cache" / "w.pth" and path.read_bytes() == PAYLOAD
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert sorted(p.name for p in path.parent.iterdir()) == [".fetch.lock", "w.pth"]  # no .part left
    assert fetch(remote, tmp_path / "cache", progress=False) == path  # in the cache: not fetched again
    assert len(server.requests) == 1


def test_processes_started_together_fetch_the_file_once(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD)
    results: list[Path] = []
    workers = [
        threading.Thread(target=lambda: results.append(fetch(remote, tmp_path, progress=False))) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results == [tmp_path / "w.pth"] * 3 and (tmp_path / "w.pth").read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def test_an_interrupted_transfer_resumes_where_it_stopped(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD)
    server.cuts["/w.pth"] = 1
    path = fetch(remote, tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("/w.pth", None), ("/w.pth", f"bytes={len(PAYLOAD) // 2}-")]


def test_a_transfer_that_keeps_breaking_off_keeps_its_part_for_the_next_run(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD)
    server.cuts["/w.pth"] = 3
    with pytest.raises(DownloadError, match=r"broke off 3 times .* is kept and the same command resumes it"):
        fetch(remote, tmp_path, progress=False)
    kept = (tmp_path / "w.pth.part").stat().st_size
    assert 0 < kept < len(PAYLOAD) and not (tmp_path / "w.pth").exists()
    assert fetch(remote, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/w.pth", f"bytes={kept}-")


def test_a_part_file_left_by_an_earlier_run_is_continued(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD)
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD[:1000])
    assert fetch(remote, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.requests == [("/w.pth", "bytes=1000-")]


def test_a_server_that_ignores_the_range_starts_the_file_over(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD)
    server.ignore_range.add("/w.pth")
    (tmp_path / "w.pth.part").write_bytes(b"x" * 1000)  # not the file's first bytes: appending would corrupt it
    assert fetch(remote, tmp_path, progress=False).read_bytes() == PAYLOAD


def test_a_part_file_that_does_not_match_the_server_is_replaced(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD, sha256=None)
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD + b"tail")  # longer than the file: the server answers 416
    assert fetch(remote, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.requests == [("/w.pth", f"bytes={len(PAYLOAD) + 4}-"), ("/w.pth", None)]


def test_a_complete_part_file_is_taken_as_it_is(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD)
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD)  # the earlier run ended before the rename
    assert fetch(remote, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.requests == [("/w.pth", f"bytes={len(PAYLOAD)}-")]


def test_a_206_from_another_offset_starts_the_file_over(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD, sha256=None)
    server.wrong_range.add("/w.pth")
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD[:1000])
    assert fetch(remote, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.requests == [("/w.pth", "bytes=1000-"), ("/w.pth", None)]


def test_a_wrong_sha256_refuses_and_removes_the_file(server: Server, tmp_path: Path):
    remote = _remote(server, "w.pth", PAYLOAD, sha256="0" * 64)
    with pytest.raises(DownloadError) as caught:
        fetch(remote, tmp_path, progress=False)
    message = str(caught.value)
    assert "\n" not in message and remote.url in message and _sha256(PAYLOAD) in message and "0" * 64 in message
    assert [path.name for path in tmp_path.iterdir()] == [".fetch.lock"]


def test_a_missing_file_is_one_line_with_the_manual_command(server: Server, tmp_path: Path):
    remote = RemoteFile(f"{server.base}/absent.pth", "absent.pth")
    with pytest.raises(DownloadError) as caught:
        fetch(remote, tmp_path, progress=False)
    message = str(caught.value)
    assert "\n" not in message and "HTTP 404" in message and f"curl -L -C - -o {tmp_path / 'absent.pth'}" in message
    assert [path.name for path in tmp_path.iterdir()] == [".fetch.lock"]


def test_no_network_is_one_line_naming_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setenv("RISAM_HOME", str(tmp_path))
    with socket.socket() as unlistened:  # bound, never listening: connections are refused
        unlistened.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unlistened.getsockname()[1]}/sam_vit_b_01ec64.pth"
        monkeypatch.setitem(SAM_WEIGHTS, "sam_vit_b", RemoteFile(url, "sam_vit_b_01ec64.pth", "0" * 64))
        assert main(["download", "sam_vit_b"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and f"could not reach {url}" in error and "curl -L -C - -o" in error
    assert error.startswith("risam download: error:")


def test_risam_download_fetches_into_risam_home_and_checks_again(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("RISAM_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(SAM_WEIGHTS, "sam_vit_b", _remote(server, "sam_vit_b_01ec64.pth", PAYLOAD))
    cached = tmp_path / "home" / "weights" / "sam_vit_b_01ec64.pth"
    assert main(["download", "sam_vit_b"]) == 0
    assert cached.read_bytes() == PAYLOAD and _sha256(PAYLOAD) in capsys.readouterr().out
    cached.write_bytes(PAYLOAD[:-1] + b"!")  # damaged in the cache
    assert main(["download", "sam_vit_b"]) == 2
    error = capsys.readouterr().err
    assert str(cached) in error and "SHA-256" in error and len(server.requests) == 1


def test_download_in_place_of_encoder_files_loads_the_fetched_files(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    overrides = {"image_encoder.stem": "patch", "image_encoder.patch_size": 16}
    image, text = (section := get_config("risam_tiny", overrides)).image_encoder, section.text_encoder
    sam = meta_sam(image.embed_dim, image.depth, image.num_heads, image.global_attn_indexes, image.window_size, 128)
    torch.save(sam.state_dict(), buffer := io.BytesIO())
    clip = small_openai_clip(text.output_dim, text.width, text.heads, text.layers)
    save_openai_jit(clip, tmp_path / "clip.pt", image_size=16)
    monkeypatch.setenv("RISAM_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(SAM_WEIGHTS, "tiny", _remote(server, "sam_tiny.pth", buffer.getvalue()))
    monkeypatch.setitem(CLIP_WEIGHTS, "tiny", _remote(server, "clip_tiny.pt", (tmp_path / "clip.pt").read_bytes()))

    fetched = create_model("risam_tiny", sam_checkpoint="download", clip_checkpoint="download", overrides=overrides)
    weights = tmp_path / "home" / "weights"
    by_path = create_model(
        "risam_tiny",
        sam_checkpoint=weights / "sam_tiny.pth",
        clip_checkpoint=weights / "clip_tiny.pt",
        overrides=overrides,
    )
    for part in ("image_encoder", "text_encoder"):
        expected = getattr(by_path, part).state_dict()
        for name, value in getattr(fetched, part).state_dict().items():
            torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=f"{part}.{name}")
    assert len(server.requests) == 2  # the second model used the cache

    monkeypatch.delitem(SAM_WEIGHTS, "tiny")
    with pytest.raises(ConfigError, match=r"image_encoder.variant='tiny' has no official weights to download"):
        create_model("risam_tiny", sam_checkpoint="download")
    with pytest.raises(ConfigError, match=r"is a timm model: 'download' fetches only Meta's SAM files"):
        create_model(
            "risam_vit_b", sam_checkpoint="download", overrides={"image_encoder.backbone": "vit_tiny_patch16_224"}
        )


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def test_data_download_fills_a_root_that_passes_the_check(server: Server, tmp_path: Path, capsys):
    made = tmp_path / "made"
    generate_refshapes(made, 8, 2, refer_layout=True)
    refcoco = {f"refcoco/{p.name}": p.read_bytes() for p in (made / "refcoco").iterdir()}
    images = made / "images" / "mscoco" / "images" / "train2014"
    train2014 = {f"train2014/{p.name}": p.read_bytes() for p in images.iterdir()}
    server.files["/refcoco.zip"] = _zip(refcoco)
    server.files["/train2014.zip"] = _zip(train2014)
    root = tmp_path / "root"
    command = ["data", "download", "refcoco", "--root", str(root), "--url-base", server.base + "/"]

    assert main(command) == 1  # annotations in place, images not: the check says so
    out = capsys.readouterr().out
    assert "image folder" in out and "does not exist" in out
    assert main([*command, "--images"]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and '"skipped": [\n    "refcoco.zip"' in out
    for name, data in {**refcoco, **{f"images/mscoco/images/{k}": v for k, v in train2014.items()}}.items():
        assert (root / name).read_bytes() == data, name
    assert [path.name for path in (root / ".downloads").iterdir()] == [".fetch.lock"]
    assert [path for path, _ in server.requests] == ["/refcoco.zip", "/train2014.zip"]


def test_data_download_refuses_an_archive_that_writes_outside_the_root(server: Server, tmp_path: Path, capsys):
    server.files["/refcoco+.zip"] = _zip({"refcoco+/instances.json": b"{}", "../escaped.txt": b"x"})
    code = main(["data", "download", "refcoco+", "--root", str(tmp_path / "root"), "--url-base", server.base])
    assert code == 2 and "'../escaped.txt' would be written outside" in capsys.readouterr().err
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "root" / "refcoco+").exists()


def test_data_download_refuses_a_json_file_cut_short(server: Server, tmp_path: Path, capsys):
    server.files["/grefs(unc).json"] = json.dumps([{"ref_id": index} for index in range(500)]).encode()
    server.files["/instances.json"] = b"{}"
    server.no_length.add("/grefs(unc).json")
    server.cuts["/grefs(unc).json"] = 1  # no length stated: the cut cannot be seen in the transfer
    root = tmp_path / "root"
    assert main(["data", "download", "grefcoco", "--root", str(root), "--url-base", server.base]) == 2
    assert "grefs(unc).json is not JSON" in capsys.readouterr().err
    assert not (root / "grefcoco" / "grefs(unc).json").exists() and not list((root / ".downloads").glob("*.json"))


def test_data_download_of_grefcoco_places_its_two_files(server: Server, tmp_path: Path, capsys):
    made = tmp_path / "made"
    generate_refshapes(made, 8, 4, refer_layout=True)
    for name in ("grefs(unc).json", "instances.json"):
        server.files[f"/{name}"] = (made / "grefcoco" / name).read_bytes()
    root = tmp_path / "root"
    (root / "images" / "mscoco" / "images").mkdir(parents=True)
    (made / "images" / "mscoco" / "images" / "train2014").rename(root / "images" / "mscoco" / "images" / "train2014")
    assert main(["data", "download", "grefcoco", "--root", str(root), "--url-base", server.base]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert (root / "grefcoco" / "grefs(unc).json").read_bytes() == (made / "grefcoco" / "grefs(unc).json").read_bytes()
