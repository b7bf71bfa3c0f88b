"""Structured outputs for the transformers engine: vLLM's `structured_outputs` enforced with xgrammar.

The same constraints as on the vLLM engine, with the same meaning: `json` (a schema),
`json_object`, `regex`, `choice`, `grammar` (EBNF, or Lark as vLLM detects it) and
`structural_tag`. Where vLLM is installed, its own checks and conversions run (those its
xgrammar backend makes: one constraint, unsupported schema features, nesting, a regex's
compile timeout, choice -> EBNF), so both engines accept, refuse and constrain alike; without
vLLM, xgrammar alone checks what it compiles. Like vLLM's xgrammar backend, the options
(`disable_any_whitespace`, ...) are accepted and have no effect per request.

A constraint is compiled off the event loop (`Grammars.compile`, 5-100 ms) and kept in a small
LRU; each choice gets its own matcher (`RowGrammar`), which the batcher thread uses to mask its
row's logits (`mask`) and advances with the chosen token. The grammar's end is a stop token
(vLLM's: the model's EOS ids and the request's `stop_token_ids`), allowed only once the
grammar can end; accepting one terminates the matcher, and the sequence stops.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import types
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from triton_llm.errors import InvalidInput, json_object

FIELD = "sampling_parameters.structured_outputs"
CONSTRAINTS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")
_OPTIONS = ("disable_any_whitespace", "disable_additional_properties", "whitespace_pattern")
_CACHE_SIZE = 64  # compiled grammars kept; SmolLM2's are 1 kB (a choice) to 100 kB (any JSON)
# xgrammar's native errors start "[21:27:30] /project/cpp/x.cc:83: ", some "Check failed: (...) is false: ".
_NATIVE_PREFIX = re.compile(r"^\[[\d:.]+\] \S+: (?:Check failed: .*? is false: )?")


@dataclass(frozen=True)
class Constraint:
    """One constraint as vLLM keys it (`get_structured_output_key`): `choice` is already a `grammar`."""

    kind: str  # json | json_object | regex | grammar | structural_tag
    spec: str


class RowGrammar:
    """One sequence's matcher; used on the batcher thread only."""

    def __init__(self, compiled: Any, stop_token_ids: list[int]):
        import xgrammar as xgr

        # Without any stop token the grammar ends where it first can; no rollback (vLLM's, without speculation).
        self.matcher = xgr.GrammarMatcher(
            compiled,
            override_stop_tokens=stop_token_ids or None,
            terminate_without_stop_token=not stop_token_ids,
            max_rollback_tokens=0,
        )
        self.vocab_size = compiled.tokenizer_info.vocab_size  # its bitmask's width

    def accept(self, token: int) -> bool:
        """Advance with the chosen token; True once the grammar has ended (a stop token was accepted)."""
        if not self.matcher.accept_token(token):  # the mask allowed no token (`token` is then 0), or a bug
            raise RuntimeError(
                f"the grammar cannot go on: no token of this model's vocabulary continues it (got {token})"
            )
        return self.matcher.is_terminated()


def mask(logits: torch.Tensor, grammars: list[RowGrammar | None]) -> torch.Tensor:
    """The logits with each constrained row's disallowed tokens at -inf (float32: xgrammar's CPU kernel)."""
    rows = [i for i, g in enumerate(grammars) if g is not None]
    if not rows:
        return logits
    import xgrammar as xgr

    # The matchers write their whole vocabulary; the logits may be narrower (ids they cannot produce).
    bitmask = xgr.allocate_token_bitmask(len(grammars), max(logits.shape[-1], *(grammars[i].vocab_size for i in rows)))
    for i in rows:
        grammars[i].matcher.fill_next_token_bitmask(bitmask, i)
    logits = logits.float()
    xgr.apply_token_bitmask_inplace(logits, bitmask.to(logits.device), indices=rows)
    return logits


class Grammars:
    """Compiles constraints for one tokenizer, from any thread; compiled grammars are cached by constraint."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size  # the logits' width, which may exceed the tokenizer's
        self._compiler: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[Constraint, Any] = OrderedDict()

    def compile(self, value: Any) -> Any:
        """`structured_outputs` as the client sent it -> an xgrammar CompiledGrammar, or InvalidInput."""
        try:
            import xgrammar  # noqa: F401
        except ImportError:
            raise InvalidInput(
                FIELD, "needs xgrammar, which is not installed for this model (pip install xgrammar)"
            ) from None
        constraint = parse(value, self._tokenizer)
        with self._lock:
            if (compiled := self._cache.get(constraint)) is not None:
                self._cache.move_to_end(constraint)
                return compiled
        try:
            compiled = _compile(self._compiler_for_tokenizer(), constraint)
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:  # xgrammar's native errors are RuntimeErrors
            raise InvalidInput(FIELD, f"cannot be compiled: {_NATIVE_PREFIX.sub('', str(exc)).strip()}") from None
        if not _allows_a_first_token(compiled, self._vocab_size):  # e.g. Lark's `start: start`
            raise InvalidInput(FIELD, "allows no output: no token of this model's vocabulary can start it")
        with self._lock:
            self._cache[constraint] = compiled
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def _compiler_for_tokenizer(self) -> Any:
        import xgrammar as xgr

        with self._lock:
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(self._tokenizer, vocab_size=self._vocab_size)
                # vLLM's compile pool size; our LRU replaces xgrammar's unbounded cache.
                threads = max(1, min((os.cpu_count() or 1) // 2, 8))
                self._compiler = xgr.GrammarCompiler(info, max_threads=threads, cache_enabled=False)
            return self._compiler


def _allows_a_first_token(compiled: Any, vocab_size: int) -> bool:
    import xgrammar as xgr

    bitmask = xgr.allocate_token_bitmask(1, vocab_size)
    xgr.GrammarMatcher(compiled).fill_next_token_bitmask(bitmask, 0)
    return bool(bitmask.any())


def _compile(compiler: Any, c: Constraint) -> Any:
    """As vLLM's `XgrammarBackend.compile_grammar`, with its engine defaults (any whitespace in JSON)."""
    import xgrammar as xgr

    helpers = _vllm_helpers()
    if c.kind in ("json", "json_object"):
        return compiler.compile_json_schema(c.spec if c.kind == "json" else '{"type": "object"}', any_whitespace=True)
    if c.kind == "grammar":
        lark = helpers.grammar_is_likely_lark if helpers else _likely_lark
        return compiler.compile_lark(c.spec) if lark(c.spec) else compiler.compile_grammar(c.spec)
    if c.kind == "regex":
        return (
            helpers.compile_regex_with_timeout(compiler.compile_regex, c.spec)
            if helpers
            else compiler.compile_regex(c.spec)
        )
    tag = json.loads(c.spec)
    if isinstance(tag, dict) and "structures" in tag:  # vLLM's older form: begin/schema/end items and triggers
        items = [
            xgr.StructuralTagItem(begin=s["begin"], schema=json.dumps(s["schema"]), end=s["end"])
            for s in tag["structures"]
        ]
        return compiler.compile_structural_tag(items, tag["triggers"])
    return compiler.compile_structural_tag(c.spec)


def parse(value: Any, tokenizer: Any) -> Constraint:
    """The one constraint of `structured_outputs` (a JSON object, or its text as vllm_backend sends it), checked."""
    value = json_object(value, FIELD)
    # vLLM's StructuredOutputsParams would drop a misspelt key and then say none was given.
    if unknown := sorted(set(value) - {*CONSTRAINTS, *_OPTIONS}):
        raise InvalidInput(f"{FIELD}.{unknown[0]}", "unknown field")
    check = _vllm_check()
    return check(value, tokenizer) if check is not None else _own_check(value)


@functools.cache
def _vllm_helpers() -> types.SimpleNamespace | None:
    """vLLM's structured-output helpers, when vLLM is installed (3 s and 140 MB to import, once)."""
    try:
        from vllm import SamplingParams
        from vllm.config import StructuredOutputsConfig
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import StructuredOutputsParams
        from vllm.v1.structured_output.request import get_structured_output_key
        from vllm.v1.structured_output.utils import compile_regex_with_timeout, grammar_is_likely_lark
    except ImportError:
        return None
    return types.SimpleNamespace(
        SamplingParams=SamplingParams,
        StructuredOutputsConfig=StructuredOutputsConfig,
        VLLMClientError=VLLMClientError,
        StructuredOutputsParams=StructuredOutputsParams,
        get_structured_output_key=get_structured_output_key,
        compile_regex_with_timeout=compile_regex_with_timeout,
        grammar_is_likely_lark=grammar_is_likely_lark,
    )


@functools.cache
def _vllm_check() -> Callable[[dict[str, Any], Any], Constraint] | None:
    v = _vllm_helpers()
    if v is None:
        return None
    import pydantic

    from triton_llm.generation.vllm_library import message

    config = v.StructuredOutputsConfig(backend="xgrammar")
    not_diffusion = types.SimpleNamespace(is_diffusion=False)  # the one model property the checks read

    def check(value: dict[str, Any], tokenizer: Any) -> Constraint:
        try:
            params = v.SamplingParams(structured_outputs=v.StructuredOutputsParams(**value))
            # vLLM's request checks with its xgrammar backend (validate_xgrammar_grammar); choice becomes a grammar.
            params._validate_structured_outputs(not_diffusion, config, tokenizer)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(".".join([FIELD, *map(str, first["loc"][:1])]), first["msg"]) from None
        except (ValueError, TypeError, v.VLLMClientError) as exc:
            raise InvalidInput(FIELD, message(exc)) from None
        kind, spec = v.get_structured_output_key(params.structured_outputs)
        return Constraint(kind.name.lower(), spec)

    return check


def _own_check(value: dict[str, Any]) -> Constraint:
    """Without vLLM: the shape of each constraint; xgrammar's compile checks the rest."""
    given = [name for name in CONSTRAINTS if value.get(name) is not None]
    if len(given) != 1:
        raise InvalidInput(FIELD, f"takes exactly one of {', '.join(CONSTRAINTS)}; got {', '.join(given) or 'none'}")
    kind, spec = given[0], value[given[0]]
    if kind == "json_object":
        _check(kind, spec is True, "must be true if set; omit structured_outputs to disable structured outputs")
        return Constraint(kind, "")
    if kind == "json" and isinstance(spec, dict):
        return Constraint(kind, json.dumps(spec))
    if kind == "choice":
        _check(kind, isinstance(spec, list) and bool(spec) and all(isinstance(c, str) for c in spec),
               "must be a non-empty list of strings")  # fmt: skip
        return Constraint("grammar", "root ::= " + " | ".join(_ebnf_string(c) for c in spec))
    _check(kind, isinstance(spec, str), "must be a string")
    _check(kind, kind == "regex" or bool(spec.strip()), "cannot be an empty string")
    _check(kind, "\x00" not in spec, "must not contain a NUL character")
    return Constraint(kind, spec)


def _check(name: str, ok: bool, problem: str) -> None:
    if not ok:
        raise InvalidInput(f"{FIELD}.{name}", problem)


def _ebnf_string(text: str) -> str:
    # JSON's string escapes are EBNF's; non-ASCII stays as it is (vLLM's choice_as_grammar does the same).
    return json.dumps(text, ensure_ascii=False)


def _likely_lark(grammar: str) -> bool:
    """vLLM's test: EBNF has a `::=` rule outside comments."""
    return not any("::=" in re.sub(r"(#|//).*$", "", line) for line in grammar.split("\n"))
