"""TLS settings and certificate renewal, on the frontend's own SSL context with in-memory
handshakes (no socket, no process): what the server presents, a renewal picked up without a
restart (files rewritten, a Kubernetes secret's symlink swap), a half-written renewal refused
while the previous certificate serves on, client certificates, and the settings refused at
start. Over real sockets: tests/integration/test_tls.py."""

from __future__ import annotations

import http.server
import logging
import os
import ssl
import threading
from pathlib import Path

import pytest

from openai_frontend import tls
from openai_frontend.settings import Settings
from tests.tls_certs import Issued, issue, make_ca
from triton_llm.cli import serve


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> bytes:
    """Both sides of a handshake through memory; the server's certificate as the client got it (DER)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {client: False, server: False}
    for _ in range(20):
        for side in (client, server):
            if not done[side]:
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client.getpeercert(binary_form=True)
    raise AssertionError("the handshake did not finish")


def client_ctx(ca: Issued, cert: Issued | None = None, folder: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca.cert_pem().decode())
    if cert is not None:
        assert folder is not None
        ctx.load_cert_chain(*reversed(cert.write(folder, "client")))
    return ctx


@pytest.fixture
def ca() -> Issued:
    return make_ca()


def served(folder: Path, ca: Issued, **settings) -> tuple[Settings, Issued]:
    server = issue(ca, "server")
    key, cert = server.write(folder, "server")
    return Settings(ssl_keyfile=str(key), ssl_certfile=str(cert), **settings), server


def test_without_settings_there_is_no_tls():
    settings = Settings()
    assert not tls.enabled(settings)
    assert tls.context(settings) is None and tls.probe_context(settings) is None


def test_the_certificate_is_served_and_a_renewal_is_picked_up_without_a_restart(tmp_path, ca):
    settings, first = served(tmp_path, ca)
    ctx = tls.context(settings)
    assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE
    reloader = tls.Reloader(ctx, settings)
    assert handshake(ctx, client_ctx(ca)) == first.der()
    assert not reloader.check()  # nothing changed
    renewed = issue(ca, "server renewed")
    renewed.write(tmp_path, "server")
    assert reloader.check()
    assert handshake(ctx, client_ctx(ca)) == renewed.der()  # the same live context
    assert not reloader.check()


def test_a_half_written_renewal_is_refused_and_the_previous_certificate_serves_on(tmp_path, ca, caplog):
    settings, first = served(tmp_path, ca)
    ctx = tls.context(settings)
    reloader = tls.Reloader(ctx, settings)
    renewed = issue(ca, "server renewed")
    Path(settings.ssl_certfile).write_bytes(renewed.cert_pem())  # its key not written yet
    with caplog.at_level(logging.WARNING, logger="openai_frontend.tls"):
        assert not reloader.check() and not reloader.check()
    assert len(caplog.records) == 1 and "previous ones serve" in caplog.records[0].getMessage()
    assert handshake(ctx, client_ctx(ca)) == first.der()
    Path(settings.ssl_keyfile).write_bytes(renewed.key_pem())
    assert reloader.check()
    assert handshake(ctx, client_ctx(ca)) == renewed.der()


def test_a_kubernetes_secret_swap_is_picked_up(tmp_path, ca):
    """A mounted secret: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>; an update writes a
    new timestamped folder and renames ..data over the old link."""

    def version(name: str, issued: Issued) -> None:
        folder = tmp_path / name
        folder.mkdir()
        issued.write(folder, "tls")
        os.symlink(name, tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    first, renewed = issue(ca, "v1"), issue(ca, "v2")
    version("..v1", first)
    for name in ("tls.key", "tls.pem"):
        os.symlink(f"..data/{name}", tmp_path / name)
    settings = Settings(ssl_keyfile=str(tmp_path / "tls.key"), ssl_certfile=str(tmp_path / "tls.pem"))
    ctx = tls.context(settings)
    reloader = tls.Reloader(ctx, settings)
    assert handshake(ctx, client_ctx(ca)) == first.der()
    version("..v2", renewed)
    assert reloader.check()
    assert handshake(ctx, client_ctx(ca)) == renewed.der()


def test_with_a_client_ca_clients_must_present_a_certificate_it_signed(tmp_path, ca):
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    settings, first = served(tmp_path, ca, ssl_ca_certs=str(tmp_path / "ca.pem"))
    ctx = tls.context(settings)
    assert ctx.verify_mode == ssl.CERT_REQUIRED  # the default once a CA is given
    assert handshake(ctx, client_ctx(ca, issue(ca, "client"), tmp_path)) == first.der()
    with pytest.raises(ssl.SSLError):
        handshake(ctx, client_ctx(ca))
    with pytest.raises(ssl.SSLError):
        handshake(ctx, client_ctx(ca, issue(make_ca("another CA"), "client"), tmp_path))
    # serve's readiness probe presents the server's own certificate (one CA signs both)
    assert handshake(ctx, tls.probe_context(settings)) == first.der()


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ("optional", ssl.CERT_OPTIONAL),
        ("required", ssl.CERT_REQUIRED),
        ("1", ssl.CERT_OPTIONAL),
        ("NONE", ssl.CERT_NONE),
    ],
)
def test_the_client_certificate_requirement_takes_words_or_vllms_numbers(tmp_path, ca, given, mode):
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    settings, _ = served(tmp_path, ca, ssl_ca_certs=str(tmp_path / "ca.pem"), ssl_cert_reqs=given)
    assert tls.context(settings).verify_mode == mode


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"ssl_keyfile": "k.pem"}, "--ssl-keyfile needs --ssl-certfile"),
        ({"ssl_ca_certs": "ca.pem"}, "need TLS"),
        ({"ssl_certfile": "{cert}", "ssl_keyfile": "{key}", "ssl_cert_reqs": "required"}, "set --ssl-ca-certs"),
        ({"ssl_certfile": "{cert}", "ssl_keyfile": "{key}", "ssl_cert_reqs": "always"}, "expected none, optional"),
        ({"ssl_certfile": "{cert}", "ssl_keyfile": "missing.key"}, "do not load"),
        ({"ssl_certfile": "{cert}", "ssl_keyfile": "{other}"}, "do not load"),
    ],
)
def test_settings_that_cannot_work_stop_the_start_saying_why(tmp_path, ca, settings, says):
    key, cert = issue(ca, "server").write(tmp_path, "server")
    other, _ = issue(ca, "other").write(tmp_path, "other")
    paths = {"cert": cert, "key": key, "other": other}
    with pytest.raises(SystemExit, match=says):
        tls.context(Settings(**{k: v.format(**paths) for k, v in settings.items()}))


class _Running:
    """A stand-in for the frontend's process in serve's wait: it runs."""

    def poll(self) -> None:
        return None


def test_serves_readiness_wait_works_over_mutual_tls(tmp_path, ca):
    """serve polls the frontend's /health/ready over TLS, presenting the server's certificate
    where clients must present one; here a threaded HTTPS server stands in for the frontend."""
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    settings, _ = served(tmp_path, ca, ssl_ca_certs=str(tmp_path / "ca.pem"))

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health/ready" else 404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    httpd.socket = tls.context(settings).wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}/health/ready"
        assert serve.wait_ready(_Running(), url, 5, context=tls.probe_context(settings))
    finally:
        httpd.shutdown()
        httpd.server_close()
