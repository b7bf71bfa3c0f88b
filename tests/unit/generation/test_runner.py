"""The generation runner's contract, on a fake Triton module and a fake engine (no server).

Every request gets exactly one final response (its last output, an error or CANCELLED), a
client's cancel reaches the engine, and the fake senders fail the test if the runner sends
after the final response, asks `is_cancelled()` after it, or touches a sender from any
thread but its response thread (tests/unit/fakes/pb_utils.py).
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.unit.fakes import pb_utils
from tests.unit.fakes.engine import FakeEngine, Script
from tests.unit.fakes.harness import Served, start_generation
from triton_llm import dead_engines
from triton_llm.errors import InvalidInput

E = pb_utils.TritonError


@pytest.fixture
def serve(monkeypatch, tmp_path):
    started: list[Served] = []

    def start(engine: FakeEngine) -> Served:
        started.append(start_generation(monkeypatch, tmp_path, engine))
        return started[-1]

    yield start
    for served in started:
        served.finalize()  # a failed test still stops its threads


def texts(request: pb_utils.InferenceRequest) -> list[str]:
    """The text of each response that is not an error."""
    return [r.outputs()["text_output"][0].decode() for r, _ in request.sender.responses if not r.has_error()]


def test_a_non_streamed_request_gets_one_final_response_with_the_whole_text(serve):
    served = serve(FakeEngine(default=Script(chunks=3)))
    request = served.request("hello")
    served.execute(request)
    served.wait()
    [(response, flags)] = request.sender.responses
    assert flags == pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL and not response.has_error()
    assert texts(request) == ["hellot0 t1 t2 "]  # not streamed: the prompt comes first
    served.check()
    assert served.outcomes() == {"success": 1}
    assert served.engine.threads == {"engine-loop"} and served.engine.shut_down


def test_a_streamed_request_gets_every_chunk_and_only_the_last_is_final(serve):
    served = serve(FakeEngine(default=Script(chunks=4, delay=0.01)))
    request = served.request("hello", stream=True)
    served.execute(request)
    served.wait()
    assert texts(request) == ["t0 ", "t1 ", "t2 ", "t3 "]
    assert [flags for _, flags in request.sender.responses] == [0, 0, 0, pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL]
    served.check()


@pytest.mark.parametrize("stream", [True, False])
def test_a_request_is_never_asked_is_cancelled_after_its_final_response(serve, stream):
    served = serve(FakeEngine(default=Script(chunks=2)))
    done, running = served.request("done", stream=stream), served.request("running", stream=stream)
    served.engine.scripts["running"] = Script(chunks=1, hang=True)
    served.execute(done, running)
    served.wait(done)
    done.sender.cancelled = True  # the client goes away after its answer
    time.sleep(10 * served.runner.CANCEL_POLL_S)  # polls happen, for the request still running
    assert served.ledger.violations == [] and not running.sender.final.is_set()
    served.check()


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_cancel_reaches_the_engine_and_gets_one_final_cancelled(serve, stream):
    served = serve(FakeEngine(default=Script(chunks=2, hang=True)))
    request, other = served.request("cancel me", stream=stream), served.request("other", stream=stream)
    served.execute(request, other)
    assert served.engine.hanging.acquire(timeout=5) and served.engine.hanging.acquire(timeout=5)
    request.sender.cancelled = True
    served.wait(request)
    assert request.sender.error().code() == E.CANCELLED
    assert len(request.sender.responses) == (3 if stream else 1)  # the chunks, then CANCELLED
    [engine_id] = [i for i, prompt in served.engine.seen.items() if prompt == "cancel me"]
    assert served.engine.cancelled == {engine_id}  # the other request goes on
    assert not other.sender.final.is_set()
    served.check()  # finalize cancels the other one
    assert other.sender.error().code() == E.CANCELLED
    assert served.outcomes() == {"cancelled": 2}


def test_invalid_input_from_the_engine_gets_one_final_invalid_arg(serve):
    served = serve(FakeEngine({"bad": Script(chunks=0, error=InvalidInput("max_tokens", "must be positive"))}))
    request = served.request("bad", stream=True)
    served.execute(request)
    served.wait()
    assert request.sender.error().code() == E.INVALID_ARG
    assert "max_tokens" in request.sender.error().message()
    assert len(request.sender.responses) == 1
    served.check()
    assert served.outcomes() == {"invalid": 1}


def test_a_request_the_protocol_rejects_gets_invalid_arg_and_never_reaches_the_engine(serve):
    served = serve(FakeEngine())
    request = served.request("", stream=True)  # text_input must not be empty
    served.execute(request)
    served.wait()
    assert request.sender.error().code() == E.INVALID_ARG and served.engine.seen == {}
    served.check()


def test_an_unexpected_engine_error_gets_one_final_internal_after_the_streamed_chunks(serve):
    served = serve(FakeEngine(default=Script(chunks=2, error=RuntimeError("out of memory"))))
    request = served.request("hello", stream=True)
    served.execute(request)
    served.wait()
    assert texts(request) == ["t0 ", "t1 "] and len(request.sender.responses) == 3
    assert request.sender.error().code() == E.INTERNAL and "out of memory" in request.sender.error().message()
    served.check()
    assert served.outcomes() == {"error": 1}


@pytest.mark.parametrize("chunks", [0, 2])
def test_an_engine_that_stops_without_a_final_chunk_gets_internal(serve, chunks):
    served = serve(FakeEngine(default=Script(chunks=chunks, finish=False)))
    request = served.request("hello")
    served.execute(request)
    served.wait()
    assert request.sender.error().code() == E.INTERNAL
    assert "without a final output" in request.sender.error().message()
    served.check()


def test_finalize_with_requests_in_flight_gives_each_one_final_response_and_shuts_the_engine_down(serve):
    served = serve(FakeEngine(default=Script(chunks=1, hang=True)))
    requests = [served.request(f"p{i}", stream=i % 2 == 0) for i in range(8)]
    served.execute(*requests)
    for _ in requests:
        assert served.engine.hanging.acquire(timeout=5)
    served.check()
    assert all(r.sender.error().code() == E.CANCELLED for r in requests)
    assert served.engine.cancelled == set(served.engine.seen) and served.engine.shut_down
    assert served.engine.active == set()


def test_a_request_that_arrives_while_the_model_stops_gets_unavailable(serve):
    served = serve(FakeEngine())
    served.engine.release_shutdown.clear()  # hold the engine's shutdown: the model is stopping
    stopping = threading.Thread(target=served.finalize)
    stopping.start()
    assert served.engine.in_shutdown.wait(5)
    late = served.request("late")
    served.execute(late)
    served.wait(late)
    served.engine.release_shutdown.set()
    stopping.join(10)
    assert late.sender.error().code() == E.UNAVAILABLE and served.engine.seen == {}
    served.check()


@pytest.mark.parametrize("under_serve", [True, False])
def test_a_dead_engine_fails_every_request_with_unavailable_then_tells_serve_or_exits(
    serve, monkeypatch, tmp_path, under_serve
):
    """Under serve, the stub names its model in serve's folder and lives on (503s) until serve
    reloads the model; alone, it exits (Triton then reports the stub unhealthy)."""
    import json

    served = serve(FakeEngine(default=Script(chunks=1, hang=True)))  # installs the fake Triton first
    from triton_llm.generation import runner

    exited = threading.Event()
    monkeypatch.setattr(runner.os, "_exit", lambda status: exited.set())
    monkeypatch.setattr(runner, "EXIT_SETTLE_S", 0.0)
    if under_serve:
        monkeypatch.setenv(dead_engines.ENV, str(tmp_path))
    else:
        monkeypatch.delenv(dead_engines.ENV, raising=False)
    requests = [served.request(f"p{i}", stream=i % 2 == 0) for i in range(4)]
    served.execute(*requests)
    for _ in requests:
        assert served.engine.hanging.acquire(timeout=5)
    served.engine.death = "EngineDeadError: EngineCore died"
    late = served.request("late")
    for r in requests:
        served.wait(r)
    served.execute(late)
    served.wait(late)
    told = tmp_path / "fake"  # the model's name (fakes/harness.py)
    deadline = time.monotonic() + 5
    while not (told.exists() if under_serve else exited.is_set()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (told.exists() and "EngineCore died" in told.read_text()) if under_serve else exited.is_set()
    later = served.request("later")  # after the engine was shut down: a 503, not an engine call
    served.execute(later)
    served.wait(later)
    assert not exited.is_set() if under_serve else True
    for r in [*requests, late, later]:
        error = r.sender.error()
        assert error.code() == E.UNAVAILABLE
        wire = json.loads(error.message())
        assert wire["type"] == "unavailable" and "EngineCore died" in wire["message"] and wire["retry_after"] > 0
    assert served.engine.shut_down and not {"late", "later"} & set(served.engine.seen.values())
    served.check()


def test_finalize_right_after_execute_still_gives_each_request_one_final_response(serve):
    # Triton may unload a model as soon as `execute` returned, before the loop ran the requests.
    served = serve(FakeEngine(default=Script(chunks=1, hang=True)))
    requests = [served.request(f"p{i}") for i in range(20)]
    served.execute(*requests)
    served.check()
    assert served.engine.shut_down


def test_200_concurrent_requests_with_random_cancels_each_get_one_final_response(serve):
    rng = random.Random(15)
    kinds = {
        "ok": Script(chunks=3, delay=0.002),
        "slow": Script(chunks=6, delay=0.005),
        "hang": Script(chunks=1, hang=True),
        "invalid": Script(chunks=0, error=InvalidInput("n", "too many")),
        "boom": Script(chunks=1, error=RuntimeError("boom")),
        "short": Script(chunks=2, finish=False),
    }
    served = serve(FakeEngine(kinds))
    prompts = [rng.choice(list(kinds)) for _ in range(200)]
    requests = [served.request(p, stream=rng.random() < 0.5) for p in prompts]
    cancelled = [r for r in requests if rng.random() < 0.3]
    # The client side: cancels land at random moments, before, during and after generation.
    delays = [rng.uniform(0, 0.1) for _ in cancelled]
    client = threading.Thread(target=_cancel_later, args=(cancelled, delays))
    client.start()
    pending = list(requests)
    while pending:  # Triton hands `execute` batches of any size
        size = rng.randint(1, 8)
        batch, pending = pending[:size], pending[size:]
        served.execute(*batch)
    client.join()
    served.wait(*[r for r, p in zip(requests, prompts, strict=True) if p != "hang" or r in cancelled])
    served.check()  # hanging requests nobody cancelled are cancelled by finalize

    assert sum(served.outcomes().values()) == 200
    for request, prompt in zip(requests, prompts, strict=True):
        error = request.sender.error()
        if prompt == "hang":
            assert error is not None and error.code() == E.CANCELLED
        if error is not None and error.code() == E.CANCELLED:  # the engine saw it too
            assert any(i.startswith(request.request_id() + "-") for i in served.engine.cancelled)
    assert served.engine.active == set() and served.engine.shut_down


def _cancel_later(requests: list[pb_utils.InferenceRequest], delays: list[float]) -> None:
    started = time.monotonic()
    for delay, request in sorted(zip(delays, requests, strict=True), key=lambda pair: pair[0]):
        time.sleep(max(0.0, started + delay - time.monotonic()))
        request.sender.cancelled = True


def test_the_startup_heap_is_frozen_out_of_the_garbage_collector_once_the_engine_is_ready(serve):
    """A full collection over torch's and vLLM's startup objects (~680k) held the GIL ~0.6 s."""
    import gc

    gc.unfreeze()
    serve(FakeEngine())
    assert gc.get_freeze_count() > 0
