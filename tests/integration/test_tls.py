"""TLS on a real frontend process, with certificates made here (a CA, a server certificate for
127.0.0.1 and localhost, a client certificate): `curl --cacert` and the openai SDK over TLS
against the session's Triton; a plain-HTTP request to the TLS port is closed cleanly (no
answer, no traceback) and the frontend serves on; a renewed certificate is served without a
restart; with a client CA, a client without a certificate is refused at the handshake."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest
import requests

from tests.servers import FrontendProcess
from tests.tls_certs import issue, make_ca

MODEL = "smollm2"


class Certs:
    def __init__(self, folder: Path):
        self.folder, self.ca = folder, make_ca()
        self.ca_pem = folder / "ca.pem"
        self.ca_pem.write_bytes(self.ca.cert_pem())
        self.server = issue(self.ca, "server")
        self.key, self.cert = self.server.write(folder, "server")
        self.client_key, self.client_cert = issue(self.ca, "client").write(folder, "client")

    def env(self, **extra: str) -> dict[str, str]:
        return {"TRITON_LLM_SSL_KEYFILE": str(self.key), "TRITON_LLM_SSL_CERTFILE": str(self.cert), **extra}


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, timeout=30)


def served_cert(port: int, ca: Path) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def test_tls_curl_sdk_plain_http_and_a_renewal_without_restart(triton, tmp_path):
    certs = Certs(tmp_path)
    server = FrontendProcess(triton.grpc_url, tmp_path / "frontend.log", env=certs.env(), ca=certs.ca_pem)
    try:
        server.wait_up(path="/health/live")
        assert server.url.startswith("https://")
        r = curl("--cacert", str(certs.ca_pem), f"{server.url}/health/live", "-w", " %{http_code}")
        assert r.returncode == 0 and r.stdout.endswith(" 200"), r.stderr
        with httpx.Client(verify=ssl.create_default_context(cafile=str(certs.ca_pem))) as http:
            sdk = openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="unused", max_retries=0, http_client=http)
            assert sdk.completions.create(model=MODEL, prompt="Hi", max_tokens=2).usage.completion_tokens == 2

        # Plain HTTP to the TLS port: its handshake fails, the connection is closed, nothing answers.
        answer = b""
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                while chunk := s.recv(1024):  # until the server closes it
                    answer += chunk
            except ConnectionResetError:
                pass
        assert not answer.startswith(b"HTTP/")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{server.port}/health/live", timeout=5)
        assert curl("--cacert", str(certs.ca_pem), f"{server.url}/health/live").returncode == 0  # serves on

        # A renewal: the files replaced while it serves; new connections get the new certificate.
        pid, renewed = server.proc.pid, issue(certs.ca, "server renewed")
        assert served_cert(server.port, certs.ca_pem) == certs.server.der()
        renewed.write(tmp_path, "server")
        deadline = time.monotonic() + 10
        while served_cert(server.port, certs.ca_pem) != renewed.der():
            assert time.monotonic() < deadline, "the renewed certificate was not served within 10 s"
            time.sleep(0.2)
        assert server.proc.pid == pid and server.proc.poll() is None
        log = server.log.read_text()
        assert "Traceback" not in log and "certificate reloaded" in log
    finally:
        server.stop()


def test_with_a_client_ca_a_client_without_a_certificate_is_refused(tmp_path):
    certs = Certs(tmp_path)
    env = certs.env(TRITON_LLM_SSL_CA_CERTS=str(certs.ca_pem))
    client_cert = (certs.client_cert, certs.client_key)
    # /health/live never asks Triton: no Triton needed here.
    server = FrontendProcess("127.0.0.1:1", tmp_path / "frontend.log", env=env, ca=certs.ca_pem, cert=client_cert)
    try:
        server.wait_up(path="/health/live")
        url, ca = f"{server.url}/health/live", ("--cacert", str(certs.ca_pem))
        assert curl(*ca, url).returncode != 0  # refused at the handshake: no certificate
        other_key, other_cert = issue(make_ca("another CA"), "stranger").write(tmp_path, "stranger")
        assert curl(*ca, "--cert", str(other_cert), "--key", str(other_key), url).returncode != 0
        r = curl(*ca, "--cert", str(certs.client_cert), "--key", str(certs.client_key), url, "-w", " %{http_code}")
        assert r.returncode == 0 and r.stdout.endswith(" 200"), r.stderr
        assert server.proc.poll() is None and "Traceback" not in server.log.read_text()
    finally:
        server.stop()
