"""TLS on the frontend: the server's SSL context from the settings, and a renewed certificate
served without a restart.

uvicorn builds its context once. Renewal (cert-manager, a Kubernetes secret's symlink swap,
certbot) replaces the files, so `Reloader.check()`, called by the server once a second, stats
them (following symlinks: a secret's swap changes the file they resolve to; vLLM's
`--enable-ssl-refresh` watches the path with watchfiles, which saw no event for such a swap).
When they changed, it reads them once, loads that copy into a scratch context first, and only
then into the live one: new connections get the new certificate, open ones keep theirs. A
renewal caught half-written (a new certificate beside the old key) is refused with one warning
and the previous pair serves on until the files load; loaded straight into the live context
(vLLM's way), it left a certificate without its key, and every handshake failed. A changed CA file adds its
certificates (OpenSSL's store cannot drop one: a CA taken out stays trusted until a restart).
"""

from __future__ import annotations

import logging
import os
import ssl
from contextlib import ExitStack
from pathlib import Path

from openai_frontend.settings import Settings

logger = logging.getLogger(__name__)

CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
# How often the server looks at the files (a stat of three files: nothing next to a request).
CHECK_EVERY_S = 1.0


def enabled(settings: Settings) -> bool:
    return bool(settings.ssl_certfile or settings.ssl_keyfile)


def scheme(settings: Settings) -> str:
    return "https" if enabled(settings) else "http"


def cert_reqs(settings: Settings) -> ssl.VerifyMode:
    """Whether clients present a certificate: the setting's word (or vLLM's number), and
    `required` by default once a client CA is given."""
    given = (settings.ssl_cert_reqs or ("required" if settings.ssl_ca_certs else "none")).strip().lower()
    by_number = {str(int(mode)): mode for mode in CERT_REQS.values()}
    mode = CERT_REQS.get(given, by_number.get(given))  # CERT_NONE is 0: no `or` here
    if mode is None:
        raise SystemExit(f"ssl_cert_reqs={settings.ssl_cert_reqs!r}: expected none, optional or required")
    return mode


def context(settings: Settings) -> ssl.SSLContext | None:
    """The server's context, or None without TLS; a setting that cannot work stops the start."""
    if not enabled(settings):
        if settings.ssl_ca_certs or settings.ssl_cert_reqs:
            raise SystemExit("client certificate settings need TLS: set --ssl-certfile and --ssl-keyfile")
        return None
    if not settings.ssl_certfile:
        raise SystemExit("--ssl-keyfile needs --ssl-certfile")
    mode = cert_reqs(settings)
    if mode != ssl.CERT_NONE and not settings.ssl_ca_certs:
        raise SystemExit("client certificates need the CA that signs them: set --ssl-ca-certs")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])  # uvicorn speaks HTTP/1.1 only
    try:
        load(ctx, settings)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise SystemExit(f"TLS: the certificate files do not load: {exc}") from None
    ctx.verify_mode = mode
    return ctx


def load(live: ssl.SSLContext, settings: Settings) -> None:
    """Read the files once and load that copy: into a scratch context, then into `live`."""
    chain = Path(settings.ssl_certfile or "").read_bytes()
    key = Path(settings.ssl_keyfile).read_bytes() if settings.ssl_keyfile else None
    ca = Path(settings.ssl_ca_certs).read_text() if settings.ssl_ca_certs else None
    with ExitStack() as stack:
        chain_path = stack.enter_context(_in_memory(chain))
        key_path = stack.enter_context(_in_memory(key)) if key is not None else None
        for ctx in (ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), live):  # the scratch one raises first
            ctx.load_cert_chain(chain_path, key_path)
            if ca is not None:
                ctx.load_verify_locations(cadata=ca)


class _in_memory:
    """A path holding `data` for `load_cert_chain` (which reads only paths): a memfd, so the
    copy of the key never touches a disk, or a read-only root file system."""

    def __init__(self, data: bytes):
        self.fd = os.memfd_create("tls", os.MFD_CLOEXEC)
        os.write(self.fd, data)

    def __enter__(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class Reloader:
    """Loads the files into the live context when they change (`check`, from the server's tick)."""

    def __init__(self, live: ssl.SSLContext, settings: Settings):
        self.live, self.settings = live, settings
        self.paths = [p for p in (settings.ssl_certfile, settings.ssl_keyfile, settings.ssl_ca_certs) if p]
        self._loaded = self._signature()
        self._refused: tuple | None = None

    def _signature(self) -> tuple:
        stats = []
        for path in self.paths:
            try:
                s = os.stat(path)  # follows the symlinks, to the file served now
                stats.append((s.st_dev, s.st_ino, s.st_mtime_ns, s.st_size))
            except OSError:
                stats.append(None)
        return tuple(stats)

    def check(self) -> bool:
        """True when a changed certificate was loaded."""
        seen = self._signature()
        if seen == self._loaded:
            return False
        try:
            load(self.live, self.settings)
        except (OSError, ssl.SSLError, ValueError) as exc:
            if seen != self._refused:  # once per state of the files; tried again each second
                self._refused = seen
                logger.warning("TLS: the changed certificate files do not load (%s); the previous ones serve", exc)
            return False
        self._loaded, self._refused = seen, None
        logger.info("TLS: certificate reloaded from %s", self.settings.ssl_certfile)
        return True


def probe_context(settings: Settings) -> ssl.SSLContext | None:
    """The client side of a readiness probe of this frontend over loopback (`serve`'s wait), or
    None without TLS. The server's name and CA are not checked: its certificate names the public
    host, and the probe never leaves the machine. Where clients must present a certificate, it
    presents the server's own, which passes when one CA signs both (docs/operations.md)."""
    if not enabled(settings):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert_reqs(settings) == ssl.CERT_REQUIRED:
        ctx.load_cert_chain(settings.ssl_certfile or "", settings.ssl_keyfile)
    return ctx
