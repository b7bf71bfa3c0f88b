"""API keys: client keys for the /v1 routes, one admin key for the control routes.

Client keys come from `--api-key` (env `TRITON_LLM_API_KEY`) and/or a file of keys, one a
line (`--api-key-file`, env `TRITON_LLM_API_KEY_FILE`); none set leaves the /v1 routes open,
as before. The admin key (`--admin-key`, env `TRITON_LLM_ADMIN_KEY`) opens the control routes
(`require_admin`: model load/unload, adapters); without one they answer the 404 of a route
that does not exist. A client key never opens a control route. The admin key also opens the
client routes: an operator who loads a model tries it with the key at hand, and that key can
already unload every model, so refusing it the routes guards nothing.

A key comes in `Authorization: Bearer <key>`, or, without that header, in `x-api-key: <key>`
(Anthropic's clients), on every route. Every failure is the same answer (401, one message,
`invalid_api_key`) whatever was wrong:
the scheme, the key, a client key on a control route, two headers. The token is hashed and
its digest compared with every key's, without stopping at a match, so the time taken says
neither which key matched nor how long any key is.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from openai_frontend import errors
from openai_frontend.settings import Settings

_REFUSED = "Invalid or missing API key: send one 'Authorization: Bearer <key>' header (or 'x-api-key: <key>')"


@dataclass(frozen=True)
class Keys:
    """The keys' SHA-256 digests: what the checks compare, the keys themselves kept nowhere."""

    client: tuple[bytes, ...] = ()
    admin: bytes | None = None

    @classmethod
    def of(cls, client: list[str], admin: str | None) -> Keys:
        unique = dict.fromkeys(k for k in client if k)
        return cls(tuple(_digest(k.encode()) for k in unique), _digest(admin.encode()) if admin else None)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        client = [settings.api_key] if settings.api_key else []
        if settings.api_key_file:
            client += read_key_file(settings.api_key_file)
        return cls.of(client, settings.admin_key)


def read_key_file(path: str) -> list[str]:
    """The keys of a file, one a line; blank lines and lines opening with '#' are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"--api-key-file {path}: {exc}") from None
    keys = [line.strip() for line in text.splitlines()]
    keys = [k for k in keys if k and not k.startswith("#")]
    if not keys:
        raise SystemExit(f"--api-key-file {path}: no key in the file (one a line)")
    return keys


async def require_client(request: Request) -> None:  # async: no thread-pool hop per request
    """The /v1 routes' dependency: any client key, or the admin key, when client keys are set."""
    keys: Keys = request.app.state.keys
    if not keys.client:
        return
    allowed = keys.client if keys.admin is None else (*keys.client, keys.admin)
    if not _any_match(_token(request), allowed):
        raise errors.Unauthorized(_REFUSED, code="invalid_api_key")


async def require_admin(request: Request) -> None:
    """The control routes' dependency: the admin key; without one configured, a 404 as for no route."""
    keys: Keys = request.app.state.keys
    if keys.admin is None:
        raise errors.NotFound("Not Found")  # the body of FastAPI's own 404 (errors.install)
    if not _any_match(_token(request), (keys.admin,)):
        raise errors.Unauthorized(_REFUSED, code="invalid_api_key")


def _token(request: Request) -> bytes | None:
    """The key's bytes: of exactly one `Authorization: Bearer <key>` header, or, without that
    header, of exactly one `x-api-key` header (Anthropic's clients send the key so); else None."""
    given = request.headers.getlist("authorization")
    # One header, compared as bytes: a str holding non-ASCII cannot be compared in constant
    # time (compare_digest refuses it), and two headers could be read differently by a proxy.
    if not given:
        keys = request.headers.getlist("x-api-key")
        return keys[0].strip().encode("latin-1") if len(keys) == 1 else None
    if len(given) != 1:
        return None
    scheme, _, token = given[0].partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip().encode("latin-1")  # the header's own bytes (ASGI decodes latin-1)


def _any_match(token: bytes | None, digests: tuple[bytes, ...]) -> bool:
    given = _digest(b"" if token is None else token)
    found = False
    for digest in digests:  # every one, no early exit
        found |= hmac.compare_digest(given, digest)
    return found and token is not None


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()
