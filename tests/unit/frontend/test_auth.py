"""Keys (openai_frontend/auth.py): several client keys, the admin key of the control routes,
and one answer for every refusal, whatever was wrong."""

from __future__ import annotations

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from openai_frontend import auth
from openai_frontend.app import create_app
from openai_frontend.settings import Settings
from tests.unit.fakes.model_server import FakeTriton, Response

OK = Response(["x"], ["stop"], [1], 3)
REFUSED = {
    "error": {
        "message": "Invalid or missing API key: send one 'Authorization: Bearer <key>' header (or 'x-api-key: <key>')",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
NOT_FOUND = {"error": {"message": "Not Found", "type": "not_found_error", "param": None, "code": None}}


def client(tmp_path=None, file_keys: list[str] | None = None, **settings) -> TestClient:
    if file_keys is not None:
        path = tmp_path / "keys"
        path.write_text("\n".join(file_keys) + "\n")
        settings["api_key_file"] = str(path)
    app = create_app(Settings(**settings), client=FakeTriton(script=lambda m, v: [OK]))

    async def control() -> dict:  # a control route as the model and adapter routes are
        return {"ok": True}

    app.add_api_route("/control", control, methods=["POST"], dependencies=[Depends(auth.require_admin)])
    return TestClient(app, raise_server_exceptions=False)


def bearer(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


def completion(c: TestClient, headers: dict):
    return c.post("/openai/v1/completions", json={"model": "gen", "prompt": "Hi"}, headers=headers)


def test_every_key_of_the_flag_and_the_file_opens_the_client_routes(tmp_path):
    c = client(tmp_path, file_keys=["# the team's keys", "", "  alpha  ", "beta"], api_key="env-key")
    for key in ("env-key", "alpha", "beta"):
        assert completion(c, bearer(key)).status_code == 200, key
    for key in ("gamma", "# the team's keys", "", "alph"):
        r = completion(c, bearer(key))
        assert (r.status_code, r.json()) == (401, REFUSED), key


def test_a_key_file_alone_is_enough(tmp_path):
    c = client(tmp_path, file_keys=["alpha"])
    assert completion(c, bearer("alpha")).status_code == 200
    assert completion(c, {}).status_code == 401


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"], ids=["empty", "comments"])
def test_a_key_file_without_keys_stops_the_start(tmp_path, text):
    (tmp_path / "keys").write_text(text)
    with pytest.raises(SystemExit, match="no key in the file"):
        create_app(Settings(api_key_file=str(tmp_path / "keys")), client=FakeTriton())
    with pytest.raises(SystemExit, match="keys"):
        create_app(Settings(api_key_file=str(tmp_path / "missing")), client=FakeTriton())


def test_control_routes_are_a_404_without_an_admin_key():
    for settings in ({}, {"api_key": "client"}):
        c = client(**settings)
        for headers in ({}, bearer("client"), bearer("anything")):
            r = c.post("/control", headers=headers)
            assert (r.status_code, r.json()) == (404, NOT_FOUND)
    assert c.post("/no-such-route").json() == NOT_FOUND  # the same as a route that does not exist


def test_the_admin_key_opens_the_control_routes_and_a_client_key_does_not():
    c = client(api_key="client", admin_key="admin")
    assert c.post("/control", headers=bearer("admin")).json() == {"ok": True}
    assert completion(c, bearer("admin")).status_code == 200  # the operator tries what it loaded
    assert completion(c, bearer("client")).status_code == 200
    r = c.post("/control", headers=bearer("client"))
    assert (r.status_code, r.json()) == (401, REFUSED)


def test_an_admin_key_alone_leaves_the_client_routes_open():
    c = client(admin_key="admin")
    assert completion(c, {}).status_code == 200
    assert c.post("/control", headers={}).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        bearer("client"),
        {"authorization": "Basic admin"},
        {"authorization": "admin"},
        {"authorization": "Bearer"},
        {"authorization": b"Bearer \xff"},
        [("authorization", "Bearer admin"), ("authorization", "Bearer admin")],
    ],
    ids=["none", "wrong", "client-key", "basic", "no-scheme", "no-token", "bytes", "twice"],
)
def test_every_refusal_is_the_same_answer(headers):
    c = client(api_key="client", admin_key="admin")
    r = c.post("/control", headers=headers)
    assert (r.status_code, r.json()) == (401, REFUSED)
    if headers != bearer("client"):
        r = completion(c, headers)
        assert (r.status_code, r.json()) == (401, REFUSED)


def test_keys_are_kept_as_digests_only():
    keys = auth.Keys.of(["alpha", "alpha", ""], "admin")
    assert len(keys.client) == 1 and all(len(d) == 32 for d in (*keys.client, keys.admin))
    assert b"alpha" not in keys.client and keys.admin != b"admin"


def test_an_x_api_key_header_is_a_key_too_where_no_authorization_header_is_sent():
    # Anthropic's clients send the key so; the Messages routes answer a refusal in their shape.
    c = client(api_key="k")
    assert completion(c, {"x-api-key": "k"}).status_code == 200
    for headers in ({"x-api-key": "nope"}, {"x-api-key": "k", "authorization": "Bearer nope"}):
        assert (completion(c, headers).status_code, completion(c, headers).json()) == (401, REFUSED), headers
    body = {"model": "gen", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}
    r = c.post("/openai/v1/messages", json=body, headers={"x-api-key": "nope"})
    assert (r.status_code, r.json()) == (
        401,
        {"type": "error", "error": {"type": "authentication_error", "message": REFUSED["error"]["message"]}},
    )
    assert c.post("/openai/v1/messages", json=body, headers={"x-api-key": "k"}).status_code == 200
