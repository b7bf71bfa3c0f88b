"""A local stand-in for the Hugging Face Hub: serves model folders over the hub's HTTP API.

Enough of the API for `huggingface_hub.snapshot_download` and `hf_hub_download` (model
info, file metadata by HEAD, file content with ranges): point HF_ENDPOINT at `url` and the
real client code downloads from here. Each repo is served at one commit; with `token` set,
requests without `Authorization: Bearer <token>` get 401, as a gated repo would.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HubStandIn:
    def __init__(self, repos: dict[str, Path], token: str | None = None):
        self.repos = {name: Path(folder) for name, folder in repos.items()}
        self.token = token
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def commit(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def files(self, repo: str) -> list[str]:
        root = self.repos[repo]
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def __enter__(self) -> HubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _authorized(self) -> bool:
                if hub.token and self.headers.get("Authorization") != f"Bearer {hub.token}":
                    self._send(401, {"error": "Invalid credentials"}, {"X-Error-Code": "GatedRepo"})
                    return False
                return True

            def _send(self, status: int, body: dict | list | bytes, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def do_GET(self) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                if not self._authorized():
                    return
                path = self.path.split("?")[0]
                tree = re.fullmatch(r"/api/models/(.+?)/tree/([^/]+)", path)
                if tree and tree.group(1) in hub.repos:
                    repo = tree.group(1)
                    entries = [{"type": "file", "path": f, "size": (hub.repos[repo] / f).stat().st_size,
                                "oid": hashlib.sha1((hub.repos[repo] / f).read_bytes()).hexdigest()}
                               for f in hub.files(repo)]  # fmt: skip
                    return self._send(200, entries)
                info = re.fullmatch(r"/api/models/(.+?)(?:/revision/([^/]+))?", path)
                if info:
                    repo, revision = info.group(1), info.group(2)
                    if repo not in hub.repos:
                        return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    if revision not in (None, "main", hub.commit(repo)):
                        return self._send(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
                    siblings = [{"rfilename": f} for f in hub.files(repo)]
                    return self._send(200, {"id": repo, "modelId": repo, "sha": hub.commit(repo), "siblings": siblings,
                                            "private": False, "tags": []})  # fmt: skip
                resolve = re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path)
                if resolve and resolve.group(1) in hub.repos:
                    repo, revision, name = resolve.groups()
                    file = hub.repos[repo] / name
                    if revision not in ("main", hub.commit(repo)):
                        return self._send(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
                    if not file.is_file():
                        return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                    data = file.read_bytes()
                    headers = {"X-Repo-Commit": hub.commit(repo), "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                               "Accept-Ranges": "bytes"}  # fmt: skip
                    ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                    if ranged:  # a resumed download
                        start = int(ranged.group(1))
                        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                        return self._send(206, data[start:], headers)
                    return self._send(200, data, headers)
                self._send(404, {"error": f"not served here: {path}"})

            do_HEAD = do_GET

        return Handler
