"""A Hugging Face Hub in miniature on 127.0.0.1, for the tests of loading from and uploading to the Hub.

It holds model repos in memory (commits of files, branches pointing at them) and answers the endpoints that
``huggingface_hub`` calls to download a file (``HEAD``/``GET .../resolve/REVISION/FILE``, with ranges), to
look up files (``paths-info``) and to upload a folder (create the repo, ``preupload``, the LFS batch API with
a basic transfer, ``commit``), with the Hub's headers (``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Error-Code``).
Files whose names end as model weights do (``.safetensors``, ``.bin``, ...) are LFS files, as on the Hub: their
ETag is their SHA-256. It records every request, can cut the next transfers of a file short, and can send other
bytes than a file's (as a broken mirror would) under the file's recorded hash.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob holding ``data`` (the ETag of a regular file on the Hub)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    return path.endswith(LFS_SUFFIXES)


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit id -> path -> bytes
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit id
    private: bool = False


@dataclass
class LocalHub:
    """The repos, the uploaded LFS objects, the requests seen (method, path, Range) and the cuts to make."""

    url: str = ""
    repos: dict[str, Repo] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # SHA-256 -> bytes, as uploaded
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    cuts: dict[str, int] = field(default_factory=dict)  # file name -> the next N GETs send half of it, then close
    substitutes: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes a GET sends in its place
    tokens: list[str] = field(default_factory=list)  # the Authorization headers of the upload calls
    validated: list[str] = field(default_factory=list)  # the model-card metadata sent to validate-yaml

    def commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Add a commit on ``branch`` holding the files of its parent plus ``files``; returns its id."""
        repo = self.repos.setdefault(repo_id, Repo())
        parent = repo.commits.get(repo.branches.get(branch, ""), {})
        tree = {**parent, **files}
        commit_id = hashlib.sha1(json.dumps([repo_id, len(repo.commits), sorted(tree)]).encode()).hexdigest()
        repo.commits[commit_id] = tree
        repo.branches[branch] = commit_id
        return commit_id

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.commits[repo.branches.get(revision, revision)]


def _split_repo_path(path: str) -> tuple[str, str] | None:
    """``ORG/NAME/resolve/REV/FILE`` -> (``ORG/NAME``, ``REV/FILE``)."""
    match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/(.+)", path)
    return (match.group(1), match.group(2)) if match else None


def _handler(hub: LocalHub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, data: object, status: int = 200) -> None:
            self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

        def _error(self, status: int, code: str) -> None:
            self._send(status, json.dumps({"error": code}).encode(), {"X-Error-Code": code})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _record(self) -> str:
            path = urllib.parse.unquote(self.path.split("?")[0])
            hub.requests.append((self.command, path, self.headers.get("Range")))
            return path

        def _resolve(self, repo_id: str, rest: str) -> tuple[str, str, bytes] | None:
            """(commit id, file path, bytes) of ``REV/FILE`` in ``repo_id``; None after an error answer."""
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(401, "RepoNotFound")
                return None
            for revision in sorted([*repo.branches, *repo.commits], key=len, reverse=True):
                if rest.startswith(revision + "/"):
                    commit_id = repo.branches.get(revision, revision)
                    file_path = rest[len(revision) + 1 :]
                    data = repo.commits[commit_id].get(file_path)
                    if data is None:
                        self._error(404, "EntryNotFound")
                        return None
                    return commit_id, file_path, data
            self._error(404, "RevisionNotFound")
            return None

        def _serve_file(self) -> None:
            path = self._record()
            split = _split_repo_path(path)
            if split is None:
                self._error(404, "EntryNotFound")
                return
            found = self._resolve(*split)
            if found is None:
                return
            commit_id, file_path, data = found
            etag = hashlib.sha256(data).hexdigest() if is_lfs(file_path) else git_blob_sha1(data)
            headers = {"X-Repo-Commit": commit_id, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
            if is_lfs(file_path):
                headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            status = 200
            if match and self.command == "GET":
                start = int(match.group(1))
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            name = file_path.rsplit("/", 1)[-1]
            body = hub.substitutes.get(name, data)[start:]
            if self.command == "GET" and hub.cuts.get(name, 0) > 0:
                hub.cuts[name] -= 1
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(status, body, headers)

        def do_HEAD(self) -> None:
            self._serve_file()

        def do_GET(self) -> None:
            self._serve_file()

        def do_PUT(self) -> None:
            path = self._record()
            match = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)
            body = self._body()
            if match is None or hashlib.sha256(body).hexdigest() != match.group(1):
                self._send(400, b"bad upload")
                return
            hub.lfs_objects[match.group(1)] = body
            self._send(200)

        def do_POST(self) -> None:
            path = self._record()
            body = self._body()
            hub.tokens.append(self.headers.get("Authorization") or "")
            if path == "/api/validate-yaml":
                self._validate_yaml(json.loads(body)["content"])
                return
            if path == "/api/repos/create":
                request = json.loads(body)
                repo_id = (
                    f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
                )
                if repo_id in hub.repos:
                    self._json({"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"}, 409)
                    return
                hub.repos[repo_id] = Repo(
                    private=request.get("visibility") == "private" or bool(request.get("private"))
                )
                hub.commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
                self._json({"url": f"{hub.url}/{repo_id}", "name": repo_id})
                return
            match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit|paths-info)/(.+)", path)
            if match:
                repo_id, action, revision = match.groups()
                if repo_id not in hub.repos:
                    self._error(404, "RepoNotFound")
                    return
                getattr(self, f"_{action.replace('-', '_')}")(repo_id, revision, body)
                return
            match = re.fullmatch(r"/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
            if match:
                self._lfs_batch(json.loads(body))
                return
            self._error(404, "EntryNotFound")

        def _validate_yaml(self, content: str) -> None:
            """What the Hub checks of a model card before it is uploaded: its YAML front matter parses to a
            mapping (errors and warnings are listed the Hub's way)."""
            hub.validated.append(content)
            front = re.match(r"---\n(.*?)\n---\n", content, re.DOTALL)
            if front is None:
                self._json({"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
                return
            try:
                metadata = yaml.safe_load(front.group(1))
            except yaml.YAMLError as error:
                self._json({"errors": [{"message": f"YAML: {error}"}], "warnings": []}, 400)
                return
            if not isinstance(metadata, dict):
                self._json({"errors": [{"message": "metadata is not a mapping"}], "warnings": []}, 400)
                return
            self._json({"errors": [], "warnings": []})

        def _preupload(self, repo_id: str, revision: str, body: bytes) -> None:
            files = json.loads(body)["files"]
            self._json(
                {
                    "files": [
                        {
                            "path": f["path"],
                            "uploadMode": "lfs" if is_lfs(f["path"]) else "regular",
                            "shouldIgnore": False,
                        }
                        for f in files
                    ]
                }
            )

        def _lfs_batch(self, request: dict) -> None:
            objects = []
            for item in request["objects"]:
                entry = {"oid": item["oid"], "size": item["size"]}
                if item["oid"] not in hub.lfs_objects:
                    entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{item['oid']}"}}
                objects.append(entry)
            self._send(
                200,
                json.dumps({"transfer": "basic", "objects": objects}).encode(),
                {"Content-Type": "application/vnd.git-lfs+json"},
            )

        def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
            files: dict[str, bytes] = {}
            for line in body.decode().splitlines():
                entry = json.loads(line)
                value = entry["value"]
                if entry["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif entry["key"] == "lfsFile":
                    data = hub.lfs_objects.get(value["oid"])
                    if data is None:
                        self._json({"error": f"LFS object {value['oid']} was never uploaded"}, 400)
                        return
                    files[value["path"]] = data
            commit_id = hub.commit(repo_id, files, branch=revision)
            self._json(
                {"commitUrl": f"{hub.url}/{repo_id}/commit/{commit_id}", "commitOid": commit_id, "success": True}
            )

        def _paths_info(self, repo_id: str, revision: str, body: bytes) -> None:
            query = urllib.parse.parse_qs(body.decode())
            paths = query.get("paths", [])
            if not paths and body.startswith(b"{"):
                paths = json.loads(body).get("paths", [])
            repo = hub.repos[repo_id]
            tree = repo.commits.get(repo.branches.get(revision, revision))
            if tree is None:
                self._error(404, "RevisionNotFound")
                return
            infos = []
            for file_path in paths:
                if file_path not in tree:
                    continue
                data = tree[file_path]
                info = {"type": "file", "path": file_path, "size": len(data), "oid": git_blob_sha1(data)}
                if is_lfs(file_path):
                    info["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                infos.append(info)
            self._json(infos)

    return Handler


@contextmanager
def serve_hub() -> Iterator[LocalHub]:
    """A :class:`LocalHub` served on a free port of 127.0.0.1 while the context lasts."""
    hub = LocalHub()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
