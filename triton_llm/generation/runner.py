"""The Triton Python-backend model for generation: concurrency written once, for any engine.

Threads, as in Triton's vllm_backend:
  - Triton's thread calls `execute`, which parses nothing and only schedules one task per
    request on the engine's event loop, then returns (decoupled: responses come later);
  - the event-loop thread runs the engine and the request tasks;
  - the response thread is the only one that touches response senders: it sends the
    responses (so a slow send never stalls the engine) and, every CANCEL_POLL_S, asks
    `is_cancelled()` of each request whose final response it has not sent yet, cancelling
    the task of those that are, which aborts the engine request. Non-streamed requests are
    covered too. Asking after the final response was sent reads a freed response factory
    (tritonserver segfaults), which one owning thread rules out.
Every request gets exactly one final response: its last output, an error, or CANCELLED.

A dead engine (vLLM's engine process killed, the transformers batcher's thread ended) is
found by the same poll: every request in flight and every new one gets UNAVAILABLE (503)
at once, then this stub process exits, so that Triton's view and ours agree the model is
gone; `triton-llm serve` reloads it (docs/operations.md#engine-death).
"""

from __future__ import annotations

import asyncio
import json
import locale
import logging
import os
import queue
import threading
import time
import uuid
from typing import Any

# The stub's embedded interpreter starts with an ASCII locale; torch's inductor then fails
# reading its UTF-8 templates. Set it before torch or vLLM is imported.
try:
    locale.setlocale(locale.LC_ALL, "C.UTF-8")
except locale.Error:
    pass

import triton_python_backend_utils as pb_utils  # noqa: E402  (only exists inside the stub)

from triton_llm import dead_engines, served_names, tracing  # noqa: E402
from triton_llm.errors import InvalidInput, Unavailable  # noqa: E402
from triton_llm.gc_heap import freeze_heap  # noqa: E402
from triton_llm.generation import admission, protocol  # noqa: E402
from triton_llm.generation.factory import advertised_inputs, create_engine, read_settings  # noqa: E402
from triton_llm.generation.stats import E2E  # noqa: E402
from triton_llm.metrics import ModelMetrics, engine_label  # noqa: E402
from triton_llm.triton_log import route_logs_to_triton  # noqa: E402

logger = logging.getLogger("triton_llm")

CANCEL_POLL_S = 0.1
EXIT_SETTLE_S = 1.0  # a dead engine's stub: time for its last IPC before it exits (_retire_dead)
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        config = auto_complete_model_config.as_dict()
        have_in = {i["name"] for i in config["input"]}
        have_out = {o["name"] for o in config["output"]}
        for spec in protocol.INPUTS:
            if spec["name"] not in have_in:
                auto_complete_model_config.add_input(spec)
        for spec in protocol.OUTPUTS:
            if spec["name"] not in have_out:
                auto_complete_model_config.add_output(spec)
        model_dir = pb_utils.get_model_dir()
        for spec in [*advertised_inputs(model_dir), *served_names.advertised_inputs(model_dir)]:
            if spec["name"] not in have_in:
                auto_complete_model_config.add_input(spec)
        # Decoupled: many responses per request. The engine batches, not Triton.
        auto_complete_model_config.set_model_transaction_policy(dict(decoupled=True))
        auto_complete_model_config.set_max_batch_size(0)
        return auto_complete_model_config

    def initialize(self, args: dict[str, Any]) -> None:
        route_logs_to_triton()
        self.model_name = args["model_name"]
        model_config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(model_config):
            raise pb_utils.TritonModelException(
                f"{self.model_name}: generation models need `model_transaction_policy {{ decoupled: true }}`"
            )
        typed = read_settings(pb_utils.get_model_dir())  # model.json, parsed once
        self.engine = create_engine(typed, args)
        engine = engine_label(self.model_name, args.get("model_instance_name", ""))
        self.metrics = ModelMetrics(self.model_name, str(args["model_version"]), self.engine.stats, engine)
        self.tracer = tracing.from_env(self.model_name)  # None unless OTEL_* names an endpoint

        # engine_id -> (task, sender): requests whose final response is not sent yet.
        self._inflight: dict[str, tuple[asyncio.Task, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._dead: str | None = None  # why the engine died, once it has
        self._retired = False  # the dead engine is shut down (_retire_dead)
        self._responses: queue.Queue = queue.Queue()
        # Set by the first execute (Triton has loaded the model): a metric family made on the response thread
        # while the stub answered Triton's initialize left a LoRA model loading forever (info gauges).
        self._loaded = False

        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="engine-loop", daemon=True)
        self._loop_thread.start()
        started = time.monotonic()
        try:
            asyncio.run_coroutine_threadsafe(self.engine.start(), self.loop).result()
        except BaseException:
            self._stop_loop()
            raise
        logger.info("%s: engine ready in %.1f s", self.model_name, time.monotonic() - started)
        # Known once the engine has started: vLLM picks its own max_num_seqs when not given.
        self.admission = admission.Admission(admission.bound(typed.settings, self.engine.max_num_seqs))

        self._response_thread = threading.Thread(target=self._send_loop, name="responses", daemon=True)
        self._response_thread.start()
        logger.info("%s: %d startup objects frozen out of the GC's scans", self.model_name, freeze_heap())

    # -- request path -----------------------------------------------------------------

    def execute(self, requests):
        self._loaded = True
        for request in requests:
            sender = request.get_response_sender()
            if self._stopping.is_set() or self._dead is not None:
                self._send_unavailable(None, sender)
                continue
            if not self.admission.admit():  # load shedding: refused at once, before any parsing
                refusal = self.admission.refusal(self.model_name).to_wire()
                self._send_error(None, sender, refusal, pb_utils.TritonError.UNAVAILABLE)
                self.metrics.finished("rejected")
                continue
            request_id = request.request_id() or uuid.uuid4().hex
            # Triton may reuse a client's id; the engine needs ids unique among live requests.
            engine_id = f"{request_id}-{uuid.uuid4().hex[:8]}"
            asyncio.run_coroutine_threadsafe(self._start(request, sender, engine_id), self.loop)
        return None

    async def _start(self, request, sender, engine_id: str) -> None:
        task = asyncio.current_task()
        with self._lock:
            self._inflight[engine_id] = (task, sender)
        outcome = "error"
        spans = None if self.tracer is None else self.tracer.start(request)
        try:
            outcome = await self._run(request, sender, engine_id, spans)
        finally:
            self.admission.release()
            self.metrics.finished(outcome)
            if spans is not None:
                spans.end(outcome)

    async def _run(self, request, sender, engine_id: str, spans: tracing.RequestSpans | None = None) -> str:
        """Serve one request to its final response; return its outcome for the metrics."""
        if self._dead is not None:  # its engine may be shut down already (_retire_dead)
            self._send_unavailable(engine_id, sender)
            return "error"
        try:
            started = time.monotonic()
            parsed = protocol.parse_request(_input_getter(request), request.parameters())
            n = self.engine.num_choices(parsed)
            first = True
            last = None
            async for chunk in self.engine.generate(parsed, engine_id):
                self.engine.stats.chunk(chunk, first, n)  # counted here, published by the poll
                if spans is not None:
                    spans.chunk(chunk)
                outputs = protocol.build_outputs(parsed, chunk, n, first)
                first = False
                if parsed.stream or chunk.finished:
                    flags = FINAL if chunk.finished else 0
                    self._responses.put((engine_id, sender, _response(outputs), flags))
                last = chunk
            if last is None or not last.finished:
                raise RuntimeError("the engine stopped without a final output")
            self.engine.stats.observe(E2E, [time.monotonic() - started])
            return "success"
        except asyncio.CancelledError:
            # The engine aborted its request on the way out (its generator saw the
            # cancellation); swallow it so that the loop keeps serving.
            if self._dead is not None:
                self._send_unavailable(engine_id, sender)
                return "error"
            self._send_error(engine_id, sender, "request was cancelled", pb_utils.TritonError.CANCELLED)
            return "cancelled"
        except InvalidInput as exc:
            self._send_error(engine_id, sender, exc.to_wire(), pb_utils.TritonError.INVALID_ARG)
            return "invalid"
        except Exception as exc:
            if self._dead is not None or self.engine.dead() is not None:  # its own error says only "engine dead"
                self._send_unavailable(engine_id, sender)
                return "error"
            logger.exception("%s: request %s failed", self.model_name, engine_id)
            self._send_error(
                engine_id, sender, f"generation failed: {exc or type(exc).__name__}", pb_utils.TritonError.INTERNAL
            )
            return "error"

    def _send_error(self, engine_id: str | None, sender, message: str, code) -> None:
        error = pb_utils.TritonError(message, code)
        self._responses.put((engine_id, sender, pb_utils.InferenceResponse(error=error), FINAL))

    def _send_unavailable(self, engine_id: str | None, sender) -> None:
        if (reason := self._dead or self.engine.dead()) is not None:
            error = Unavailable(f"{self.model_name}: its engine died ({reason}); it is being restarted", retry_after=5)
        else:
            error = Unavailable(f"{self.model_name} is shutting down")
        self._send_error(engine_id, sender, error.to_wire(), pb_utils.TritonError.UNAVAILABLE)

    def _send_loop(self) -> None:
        next_poll = time.monotonic() + CANCEL_POLL_S
        while True:
            try:
                item = self._responses.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                item = ()
            if item is None:
                return
            if item:
                engine_id, sender, response, flags = item
                if flags & FINAL:
                    with self._lock:  # no is_cancelled() from here on: the factory goes away
                        self._inflight.pop(engine_id, None)
                try:
                    sender.send(response, flags=flags)
                except Exception:
                    # The client may be gone; there is nobody left to tell.
                    logger.warning("%s: could not send a response", self.model_name, exc_info=True)
            if time.monotonic() >= next_poll:
                self._poll_cancellations()
                next_poll = time.monotonic() + CANCEL_POLL_S
                if self._dead is not None and not self._retired and not self._inflight and self._responses.empty():
                    self._retire_dead()

    def _poll_cancellations(self) -> None:
        try:
            if self._dead is None and not self._stopping.is_set() and (reason := self.engine.dead()):
                logger.error("%s: the engine died: %s; failing its requests, then stopping it", self.model_name, reason)
                self._dead = reason  # from here on, each request's end is a 503 (see _run)
            with self._lock:
                inflight = list(self._inflight.values())
            if self._dead is not None:
                for task, _ in inflight:
                    self.loop.call_soon_threadsafe(task.cancel)
            for task, sender in inflight:
                if not task.done() and sender.is_cancelled():
                    self.loop.call_soon_threadsafe(task.cancel)
            self.metrics.publish(self.engine.load(), info=self._loaded)
        except Exception:  # one bad poll must not end the response thread
            logger.warning("%s: cancellation poll failed", self.model_name, exc_info=True)

    # -- shutdown ---------------------------------------------------------------------

    def _retire_dead(self) -> None:
        """Every request has had its 503: free what is left of the engine. Under `triton-llm serve`,
        tell its supervisor (`dead_engines.report`) and answer 503
        until it reloads the model: its unload ends this process through `finalize`, as any unload
        does. Alone, end this process (Triton then says the stub is unhealthy); that exit can abort
        tritonserver (below), which is why serve asks for the reload instead."""
        self._retired = True
        try:
            asyncio.run_coroutine_threadsafe(self.engine.shutdown(), self.loop).result(timeout=10)
        except Exception:
            logger.warning("%s: shutting the dead engine down failed", self.model_name, exc_info=True)
        try:
            if dead_engines.report(self.model_name, self._dead or ""):
                logger.error("%s: its engine died (%s); 503s until serve reloads it", self.model_name, self._dead)
                return
        except OSError:
            logger.warning("%s: could not tell serve; exiting instead", self.model_name, exc_info=True)
        logger.error("%s: exiting: its engine died (%s)", self.model_name, self._dead)
        # The stub's own threads hand that log line and the last responses to Triton through shared
        # memory; a process that ends in the middle of one leaves Triton a lock it can never take
        # (boost::interprocess::lock_exception: tritonserver aborted in about 1 exit in 4).
        time.sleep(EXIT_SETTLE_S)
        os._exit(1)

    def finalize(self) -> None:
        logger.info("%s: stopping", self.model_name)
        self._stopping.set()
        try:
            asyncio.run_coroutine_threadsafe(self._drain_and_shutdown(), self.loop).result(timeout=20)
        except Exception:
            logger.warning("%s: engine shutdown did not finish cleanly", self.model_name, exc_info=True)
        self._responses.put(None)
        self._response_thread.join(timeout=5)
        self._stop_loop()
        self.metrics.close()
        logger.info("%s: stopped", self.model_name)

    async def _drain_and_shutdown(self) -> None:
        # Collected here, on the loop, not on Triton's thread: a request that `execute` has
        # just scheduled is registered by now (the loop runs callbacks in order), so it too
        # is cancelled and gets its final response.
        with self._lock:
            tasks = [task for task, _ in self._inflight.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await self.engine.shutdown()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(timeout=5)


def _input_getter(request):
    def get(name: str):
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return None if tensor is None else tensor.as_numpy()

    return get


def _response(outputs: dict[str, Any]):
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in outputs.items()])
