"""Load shedding in the generation runner, on the fake Triton module and a fake engine: past
`max_concurrent_requests` admitted requests (running plus waiting) a request is refused at
once with UNAVAILABLE and the `overloaded` structured error, never reaching the engine; a
place is given back when a request ends, however it ends."""

from __future__ import annotations

import json

import pytest

from tests.unit.fakes import pb_utils
from tests.unit.fakes.engine import FakeEngine, Script
from tests.unit.fakes.harness import Served, install, use_engine
from triton_llm.errors import SettingError
from triton_llm.generation import admission
from triton_llm.settings import GenerationSettings, parse_settings

E = pb_utils.TritonError


@pytest.fixture
def serve(monkeypatch, tmp_path):
    started: list[Served] = []

    def start(engine: FakeEngine, **settings) -> Served:
        runner = install(monkeypatch, tmp_path, "triton_llm.generation.runner")
        (tmp_path / "model.json").write_text(json.dumps({"model": "fake-model", **settings}))
        use_engine(monkeypatch, runner, engine)
        monkeypatch.setattr(runner, "CANCEL_POLL_S", 0.01)
        started.append(Served(runner, engine))
        return started[-1]

    yield start
    for served in started:
        served.finalize()


def test_past_the_bound_a_request_is_refused_at_once_and_never_reaches_the_engine(serve):
    served = serve(FakeEngine(default=Script(chunks=1, hang=True)), max_concurrent_requests=2)
    held = [served.request("held 0", stream=True), served.request("held 1")]
    served.execute(*held)
    for _ in held:
        assert served.engine.hanging.acquire(timeout=5)
    refused = [served.request("refused", stream=True), served.request("refused")]
    served.execute(*refused)
    served.wait(*refused)
    for request in refused:
        error = request.sender.error()
        assert error.code() == E.UNAVAILABLE
        assert json.loads(error.message()) == {
            "message": "fake is serving its limit of 2 requests (max_concurrent_requests); retry later",
            "type": "overloaded",
            "retry_after": 1,
        }
    assert sorted(served.engine.seen.values()) == ["held 0", "held 1"]
    assert not any(r.sender.final.is_set() for r in held)  # admitted requests are untouched
    served.check()


@pytest.mark.parametrize("ending", ["finished", "cancelled", "failed"])
def test_a_request_that_ends_gives_its_place_back(serve, ending):
    engine = FakeEngine(default=Script(chunks=1, hang=True))
    engine.scripts["ends"] = Script(chunks=1, delay=0.05, error=RuntimeError("boom") if ending == "failed" else None)
    served = serve(engine, max_concurrent_requests=2)
    held, ends = served.request("held"), served.request("ends")
    served.execute(held, ends)
    assert engine.hanging.acquire(timeout=5)
    if ending == "cancelled":
        ends.sender.cancelled = True
    served.wait(ends)
    later = served.request("later")
    served.execute(later)
    assert engine.hanging.acquire(timeout=5), "the place was not given back"
    assert served.model.admission.count == 2
    served.check()
    assert served.model.admission.count == 0


def test_the_default_bound_is_twice_the_engines_batch(serve):
    engine = FakeEngine()
    engine.max_num_seqs = 3
    served = serve(engine)
    assert served.model.admission.limit == 6
    served.check()


def test_the_bound_is_read_from_model_json_and_checked():
    def bound(raw, max_num_seqs):
        return admission.bound(parse_settings(GenerationSettings, raw), max_num_seqs)

    assert bound({"model": "m", "max_concurrent_requests": 5}, max_num_seqs=64) == 5
    assert bound({"model": "m", "max_num_seqs": 8}, max_num_seqs=8) == 16
    for bad in (0, -1, "8", 2.5):
        with pytest.raises(SettingError) as error:
            bound({"model": "m", "max_concurrent_requests": bad}, max_num_seqs=64)
        assert error.value.key == "max_concurrent_requests"
