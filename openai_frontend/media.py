"""The fetch boundary: a client's image URL -> the image's bytes, checked (docs/operations.md#images).

The frontend is the exposed process, so it is the one that reaches out: the models fetch
nothing (they take images as bytes, docs/protocol.md#images). What a URL may reach, and the
defaults, chosen so that a frontend facing the internet cannot be turned against its own network:

- `data:` URLs: always taken (the bytes are the client's own; the body limit bounds them).
- http(s): off unless `allowed_media_domains` lists the host (vLLM's `--allowed-media-domains`:
  an exact host name, or `*` for any host whose addresses are all public). A host the operator
  named may be internal; a redirect is followed (at most 3) only to an allowed host, and never into
  loopback, link-local, private or other non-public addresses (where cloud metadata and internal
  services live), whatever the list says. Each fetch has a timeout and a byte cap.
- `file://` and local paths: only under `allowed_local_media_path` (vLLM's
  `--allowed-local-media-path`), symlinks resolved first; off by default.

Every image is then opened (off the event loop unless it is small): its header's pixel count against the cap (a
decompression bomb is refused before its pixels are decoded), then decoded once to prove it is
an image. A refusal is a 400 naming the content part (`messages.0.content.1.image_url`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from openai_frontend.errors import BadRequest

MAX_REDIRECTS = 3
# Images (and data: URL payloads) up to this size are checked on the event loop: a 32x32 JPEG decodes in
# ~0.1 ms, less than a worker thread waits for the GIL behind a busy loop (up to its 5 ms switch interval).
INLINE_BYTES = 65536


@dataclass(frozen=True)
class MediaSettings:
    # Hosts an http(s) image URL may name ("*": any host with public addresses only); none: http(s) refused.
    allowed_domains: tuple[str, ...] = ()
    # The folder `file://` URLs and local paths may read under; None: refused.
    allowed_local_path: str | None = None
    timeout_s: float = 10.0
    # One image's bytes: 20 MiB holds a 1080p PNG (~3-6 MB) or a 24-megapixel JPEG several times over.
    max_bytes: int = 20 * 1024 * 1024
    # One image's pixels, from its header: 8K (33 M) fits; a bomb (say 50,000 x 50,000) does not.
    max_pixels: int = 40_000_000
    # Images in one request: each is fetched, decoded and encoded by the model (vLLM's own per-prompt
    # limit, model.json's limit_mm_per_prompt, applies after this).
    max_images: int = 32


class MediaError(BadRequest):
    def __init__(self, param: str, problem: str):
        super().__init__(f"{param}: {problem}", param=param)


async def load_image(url: str, param: str, settings: MediaSettings) -> bytes:
    """The image at `url` (data:, http(s), file:// or a path), checked; MediaError naming `param` otherwise."""
    if url.startswith("data:"):
        data = await _data_url(url, param, settings)
    elif url.startswith(("http://", "https://")):
        data = await _fetch(url, param, settings)
    elif url.startswith("file://") or url.startswith("/"):
        data = await asyncio.to_thread(_read_local, url, param, settings)
    else:
        raise MediaError(param, "the URL must be a data:, http(s) or file:// URL")
    if len(data) <= INLINE_BYTES:
        check_image(data, param, settings.max_pixels)
    else:
        await asyncio.to_thread(check_image, data, param, settings.max_pixels)
    return data


async def _data_url(url: str, param: str, settings: MediaSettings) -> bytes:
    head, sep, payload = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise MediaError(param, "a data: URL must be data:<media type>;base64,<data>")
    if len(payload) * 3 // 4 > settings.max_bytes:
        raise MediaError(param, f"the image is over {settings.max_bytes} bytes")

    def decode() -> bytes:
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise MediaError(param, "the data: URL is not valid base64") from None

    return await asyncio.to_thread(decode) if len(payload) > INLINE_BYTES else decode()


def _read_local(url: str, param: str, settings: MediaSettings) -> bytes:
    if settings.allowed_local_path is None:
        raise MediaError(param, "local files are not served (the frontend's --allowed-local-media-path is unset)")
    raw = unquote(urlsplit(url).path) if url.startswith("file://") else url
    root = Path(settings.allowed_local_path).resolve()
    path = Path(raw).resolve()  # symlinks and .. resolved before the check
    if not path.is_relative_to(root):
        raise MediaError(param, "the file is outside the allowed local media folder")
    try:
        with path.open("rb") as f:
            data = f.read(settings.max_bytes + 1)
    except OSError as exc:
        raise MediaError(param, f"cannot read the file: {exc.strerror}") from None
    if len(data) > settings.max_bytes:
        raise MediaError(param, f"the image is over {settings.max_bytes} bytes")
    return data


def _allowed_host(host: str, settings: MediaSettings) -> bool:
    return host.lower() in {d.lower() for d in settings.allowed_domains} or "*" in settings.allowed_domains


async def _public(host: str) -> bool:
    """Whether every address `host` resolves to is public (not loopback, link-local, private, reserved)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    return bool(addresses) and all(a.is_global for a in addresses)


async def _check_host(url: str, param: str, settings: MediaSettings, redirected: bool) -> None:
    host = urlsplit(url).hostname or ""
    if not settings.allowed_domains:
        raise MediaError(param, "http(s) image URLs are not fetched (the frontend's --allowed-media-domains is empty)")
    if not _allowed_host(host, settings):
        raise MediaError(param, f"the host {host!r} is not in the frontend's allowed media domains")
    named = host.lower() in {d.lower() for d in settings.allowed_domains}
    if (redirected or not named) and not await _public(host):
        where = "a redirect into" if redirected else "a host with"
        raise MediaError(param, f"{where} a loopback, link-local or private address is refused ({host})")


async def _fetch(url: str, param: str, settings: MediaSettings) -> bytes:
    import httpx

    try:
        async with asyncio.timeout(settings.timeout_s):
            async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
                for hop in range(MAX_REDIRECTS + 1):
                    await _check_host(url, param, settings, redirected=hop > 0)
                    async with client.stream("GET", url) as response:
                        if response.is_redirect:
                            url = urljoin(url, response.headers.get("location", ""))
                            continue
                        if response.status_code != 200:
                            raise MediaError(param, f"fetching the image failed: HTTP {response.status_code}")
                        return await _body(response, param, settings.max_bytes)
                raise MediaError(param, f"more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise MediaError(param, f"fetching the image took over {settings.timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise MediaError(param, f"fetching the image failed: {type(exc).__name__}") from None


async def _body(response, param: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise MediaError(param, f"the image is over {max_bytes} bytes")
    buf = bytearray()
    async for chunk in response.aiter_bytes():
        buf += chunk
        if len(buf) > max_bytes:
            raise MediaError(param, f"the image is over {max_bytes} bytes")
    return bytes(buf)


def check_image(data: bytes, param: str, max_pixels: int) -> None:
    """`data` is one image PIL can decode, of at most `max_pixels` (read from its header first)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise MediaError(param, "the image is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise MediaError(param, f"the image is {width}x{height}: {width * height} pixels, over {max_pixels}")
            image.load()
    except UnidentifiedImageError:
        raise MediaError(param, "the bytes are not an image (PNG, JPEG, WebP, GIF, ...)") from None
    except Image.DecompressionBombError:  # PIL's own check, at twice its 89 M pixels
        raise MediaError(param, f"the image has more pixels than the limit of {max_pixels}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaError(param, f"the image could not be decoded: {exc}") from None


def from_settings(settings) -> MediaSettings:
    """The fetch boundary that the frontend's settings (settings.Settings) describe."""
    return MediaSettings(
        allowed_domains=tuple(settings.allowed_media_domains),
        allowed_local_path=settings.allowed_local_media_path,
        timeout_s=settings.media_fetch_timeout_s,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        max_images=settings.max_images,
    )
