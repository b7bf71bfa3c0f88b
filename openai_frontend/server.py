"""The app under uvicorn, with a drain on SIGTERM and a timeout on request headers.

- **Drain.** The first SIGTERM (or Ctrl-C) begins it (`middleware.Drain`): readiness answers
  503, new API requests get a 503 with `Retry-After`, and the requests in flight run on, streams
  to their last byte. uvicorn's own stop (close the listener and the idle connections, then the
  app's shutdown) begins once none is left, or after `drain_timeout_s`; then the connections
  still busy are closed, which ends their requests as a client's leaving does (their Triton
  requests are cancelled). A second signal stops at once. uvicorn alone would close the
  listener at once and cancel in-flight requests after its graceful timeout.
- **Header limits.** uvicorn's httptools protocol has none: a client that opens connections
  and never finishes its request headers (slowloris) holds each one forever, and one that sends
  endless headers grows our memory. `HeaderLimits` closes a connection whose request headers
  are not complete `header_timeout_s` after it opened (on a kept-alive connection: after the
  next request's first byte), and answers 431 to headers over MAX_HEADER_BYTES.
- **TLS** (`tls.py`), when the settings give a certificate: the tick re-reads renewed files.
  A plain-HTTP request to the TLS port fails its handshake and its connection is closed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from openai_frontend import tls
from openai_frontend.middleware import Drain
from openai_frontend.settings import Settings

logger = logging.getLogger(__name__)

# uvicorn calls `on_tick` every 0.1 s.
TICK_S = 0.1
# Once drained or out of time, how long uvicorn waits for the last writes before cancelling.
CLOSE_GRACE_S = 1
# A request line and headers over this are a 431 (h11's and Node's limit is 16 KiB, nginx's 32).
MAX_HEADER_BYTES = 64 * 1024
_MESSAGE = f"request headers over {MAX_HEADER_BYTES} bytes\n".encode()
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_MESSAGE), _MESSAGE)
)


class HeadersTooLarge(Exception):
    pass


class HeaderLimits(HttpToolsProtocol):
    def __init__(self, *args, header_timeout_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        # The request line and headers of the request being read: as parsed (exact once a
        # header is whole), and as received while still incomplete (a header never ending).
        self._parsed = self._received = 0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        reading_headers = self._header_timer is not None
        super().data_received(data)
        if reading_headers and self._header_timer is not None:  # this chunk did not end them
            self._received += len(data)
            if self._received > MAX_HEADER_BYTES:
                self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a parser error, a HeadersTooLarge raised below included.
        if max(self._parsed, self._received) <= MAX_HEADER_BYTES:
            return super().send_400_response(msg)
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed = self._received = 0
        self._arm()  # a kept-alive connection's next request (the first one's timer runs already)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > MAX_HEADER_BYTES:
            raise HeadersTooLarge  # httptools stops parsing; uvicorn calls send_400_response

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            logger.info("closing %s: its request headers took over %g s", self.client, self.header_timeout_s)
            self.transport.close()


class DrainingServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, drain: Drain, drain_timeout_s: float, certificates: tls.Reloader | None = None
    ):
        super().__init__(config)
        self.drain, self.drain_timeout_s = drain, drain_timeout_s
        self.certificates = certificates
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: set flags only (logging here could deadlock on the logging lock).
        if self.drain.draining:
            self.force_exit = True  # the second signal: uvicorn stops without waiting
            super().handle_exit(sig, frame)
        else:
            self.drain.start()

    async def on_tick(self, counter: int) -> bool:
        if self.certificates is not None and counter % round(tls.CHECK_EVERY_S / TICK_S) == 0:
            self.certificates.check()
        if self.drain.draining and not self.should_exit:
            if not self._announced:
                self._announced = True
                logger.warning(
                    "draining: %d request(s) in flight get up to %g s to finish; a second signal stops at once",
                    self.drain.inflight, self.drain_timeout_s,
                )  # fmt: skip
            if self.drain.inflight == 0 or self.drain.elapsed() >= self.drain_timeout_s:
                if self.drain.inflight:
                    logger.warning("drain timeout: closing the connections of %d request(s)", self.drain.inflight)
                    # As if their clients had left: each request ends on its own disconnect path
                    # (its Triton request cancelled), rather than by uvicorn's cancellation,
                    # which logs a traceback per request.
                    for connection in list(self.server_state.connections):
                        connection.transport.close()
                self.should_exit = True
        return await super().on_tick(counter)


def build(app: FastAPI, settings: Settings, log_level: str = "info") -> DrainingServer:
    context = tls.context(settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level, loop="uvloop", access_log=False,
        http=functools.partial(HeaderLimits, header_timeout_s=settings.header_timeout_s),
        timeout_graceful_shutdown=CLOSE_GRACE_S,
        ssl_context_factory=(lambda *_: context) if context is not None else None,
    )  # fmt: skip
    reloader = tls.Reloader(context, settings) if context is not None else None
    return DrainingServer(config, app.state.drain, settings.drain_timeout_s, reloader)


def run(app: FastAPI, settings: Settings, log_level: str = "info") -> None:
    build(app, settings, log_level).run()
