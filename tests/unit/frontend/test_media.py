"""The fetch boundary (openai_frontend/media.py) against a real HTTP server in this process: the
allow-list, redirects into loopback, the timeout, the byte cap, local files, and the image checks."""

from __future__ import annotations

import asyncio
import base64
import http.server
import threading
import time
from pathlib import Path

import pytest

from openai_frontend.media import MediaError, MediaSettings, load_image
from tests.tiny_vlm import noise_image, png_bomb, png_bytes

PNG = png_bytes(noise_image())
PARAM = "messages.0.content.1.image_url"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        port = self.server.server_address[1]
        if self.path == "/img.png":
            self._send(PNG)
        elif self.path == "/big.png":
            self._send(PNG + b"\0" * 4096)
        elif self.path == "/slow.png":
            time.sleep(2)
            self._send(PNG)
        elif self.path == "/to-loopback":  # a redirect into 127.0.0.1 by another allowed name
            self._redirect(f"http://127.0.0.1:{port}/img.png")
        elif self.path == "/to-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/")
        elif self.path == "/to-unlisted":
            self._redirect("http://unlisted.invalid/img.png")
        else:
            self.send_response(404)
            self.end_headers()

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()  # no Content-Length: the cap is applied while reading
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"localhost:{httpd.server_address[1]}"
    httpd.shutdown()


def load(url: str, **settings) -> bytes:
    return asyncio.run(load_image(url, PARAM, MediaSettings(**settings)))


def refused(url: str, words: str, **settings) -> None:
    with pytest.raises(MediaError) as info:
        load(url, **settings)
    assert info.value.param == PARAM and words in info.value.message, info.value.message


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_data_urls_are_taken_by_default():
    assert load(data_url(PNG)) == PNG


def test_remote_urls_are_off_by_default(server):
    refused(f"http://{server}/img.png", "--allowed-media-domains is empty")


def test_an_allowed_host_is_fetched(server):
    assert load(f"http://{server}/img.png", allowed_domains=("localhost",)) == PNG


def test_a_host_not_on_the_list_is_refused(server):
    refused(f"http://{server}/img.png", "not in the frontend's allowed media domains", allowed_domains=("example.com",))


def test_any_host_means_public_hosts_only(server):
    refused(f"http://{server}/img.png", "loopback, link-local or private", allowed_domains=("*",))


def test_redirects_into_loopback_or_link_local_are_refused(server):
    allowed = ("localhost", "127.0.0.1", "169.254.169.254")  # even when the operator listed them
    refused(f"http://{server}/to-loopback", "a redirect into a loopback", allowed_domains=allowed)
    refused(f"http://{server}/to-metadata", "a redirect into a loopback", allowed_domains=allowed)


def test_a_redirect_to_an_unlisted_host_is_refused(server):
    refused(f"http://{server}/to-unlisted", "'unlisted.invalid' is not in", allowed_domains=("localhost",))


def test_a_slow_server_times_out(server):
    refused(f"http://{server}/slow.png", "took over 0.5 s", allowed_domains=("localhost",), timeout_s=0.5)


def test_the_byte_cap_holds_while_reading(server):
    refused(
        f"http://{server}/big.png",
        f"over {len(PNG) + 100} bytes",
        allowed_domains=("localhost",),
        max_bytes=len(PNG) + 100,
    )
    refused(data_url(PNG), "over 100 bytes", max_bytes=100)


def test_local_files_only_from_the_allowed_folder(tmp_path: Path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "a.png").write_bytes(PNG)
    (tmp_path / "secret.png").write_bytes(PNG)
    refused(f"file://{allowed}/a.png", "--allowed-local-media-path is unset")
    assert load(f"file://{allowed}/a.png", allowed_local_path=str(allowed)) == PNG
    refused(f"file://{allowed}/../secret.png", "outside the allowed", allowed_local_path=str(allowed))
    (allowed / "link.png").symlink_to(tmp_path / "secret.png")
    refused(f"file://{allowed}/link.png", "outside the allowed", allowed_local_path=str(allowed))


def test_bad_images_are_refused_naming_the_part():
    refused("data:image/png;base64,!!!!", "not valid base64")
    refused(data_url(PNG[:200]), "could not be decoded")  # truncated
    refused(data_url(b"hello, world"), "not an image")
    refused("ftp://example.com/a.png", "data:, http(s) or file://")


def test_a_decompression_bomb_is_refused_from_its_header():
    bomb = png_bomb()  # 20,000 x 20,000: 400 M pixels from a few hundred KB; never decoded
    started = time.monotonic()
    refused(data_url(bomb), "more pixels than the limit of 40000000")
    refused(data_url(png_bytes(noise_image(300, 200))), "300x200: 60000 pixels, over 50000", max_pixels=50_000)
    assert time.monotonic() - started < 2


def test_media_parts_become_the_image_tensor_and_a_models_refusal_names_the_part():
    from openai_frontend.backend import ModelInfo
    from openai_frontend.errors import BadRequest
    from openai_frontend.schemas.chat import Message
    from openai_frontend.serving.content import media_inputs, media_parts, rename

    image = {"type": "image_url", "image_url": {"url": data_url(PNG)}}
    messages = [
        Message(role="user", content=[{"type": "text", "text": "a"}, image]),
        Message(role="assistant", content="b"),
        Message(role="user", content=[image]),
    ]
    parts = media_parts(messages)
    assert [p.param for p in parts] == ["messages.0.content.1.image_url", "messages.2.content.0.image_url"]
    assert messages[0].for_template()["content"] == [{"type": "text", "text": "a"}, {"type": "image"}]
    vlm = ModelInfo("vlm", True, True, True, False, 0, inputs=frozenset({"messages", "image"}))
    tensors = asyncio.run(media_inputs(parts, vlm, None))
    assert [base64.b64decode(b) for b in tensors["image"]] == [PNG, PNG]
    text_only = ModelInfo("llm", True, True, True, False, 0, inputs=frozenset({"messages"}))
    with pytest.raises(MediaError, match="takes no images") as info:
        asyncio.run(media_inputs(parts, text_only, None))
    assert info.value.param == "messages.0.content.1.image_url"
    with pytest.raises(MediaError, match="at most 1 images") as info:
        asyncio.run(media_inputs(parts, vlm, MediaSettings(max_images=1)))
    assert info.value.param == "messages.2.content.0.image_url"
    renamed = rename(BadRequest("image[1]: At most 1 image(s)", param="image[1]"), parts)
    assert renamed.param == "messages.2.content.0.image_url"
    assert renamed.message == "messages.2.content.0.image_url: At most 1 image(s)"
