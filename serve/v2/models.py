"""The two models the v2 protocol serves, their metadata and their inference.

* ``lnrnn``: input ``text`` BYTES [-1] (one document per element, any bytes) -> ``bits`` and
  ``bits_per_byte`` FP32 [-1]; with the request parameter ``top_k`` also ``top_chars`` BYTES [-1, k] and
  ``top_probs`` FP32 [-1, k] (the next characters, as ``/v1/predict`` lists them). With the sequence
  extension (``sequence_id``, ``sequence_start``, ``sequence_end``) a text arrives in pieces: each piece is
  appended to a server-held session (the ``/v1/sessions`` store, id ``v2:<sequence_id>``), and its bits are
  those of the piece after everything before it, so the pieces' bits add up to ``/v1/score`` of the whole.
* ``lnrnn-step``: the raw step graph, ``token`` INT64 [-1] and ``state`` FP32 [L, -1, S] -> ``logprobs``
  FP32 [-1, 257] and ``state_out`` FP32 [L, -1, S], for clients that carry the recurrence themselves.
  ``state`` may be left out: every row then starts from the model's initial state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lnrnn.bpc import bits_per_byte, nats_to_bits
from lnrnn.contract import BOS_ID, STEP_INPUTS, STEP_OUTPUTS, VOCAB_SIZE
from lnrnn.scorer import Fed, Scored
from lnrnn.serve.config import Settings
from lnrnn.serve.engine.decode import top_chars
from lnrnn.serve.engine.gate import InferenceGate
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.serve.engine.sessions import Session, SessionStore
from lnrnn.serve.errors import NotFound
from lnrnn.serve.http.limits import check_size
from lnrnn.serve.http.schemas import MAX_TOP_K
from lnrnn.serve.v2.tensors import BadRequest, InferRequest, Tensor, bytes_tensor, number_tensor

TEXT_MODEL = "lnrnn"
STEP_MODEL = "lnrnn-step"
MODELS = (TEXT_MODEL, STEP_MODEL)
VERSION = "1"
SESSION_PREFIX = "v2:"  # /v1 session ids are URL-safe base64, so they never contain ':'
TEXT_PARAMETERS = {"top_k", "sequence_id", "sequence_start", "sequence_end", "binary_data_output"}
IGNORED_PARAMETERS = {"priority", "timeout"}  # tritonclient scheduling hints; this server has one queue
MAX_STEP_ROWS = 1024


def metadata(name: str, runtime: Runtime) -> dict[str, Any]:
    """``GET /v2/models/{name}``: inputs and outputs with their datatypes and shapes (-1 = variable)."""
    if name == TEXT_MODEL:
        inputs = [_spec("text", "BYTES", [-1])]
        outputs = [
            _spec("bits", "FP32", [-1]),
            _spec("bits_per_byte", "FP32", [-1]),
            _spec("top_chars", "BYTES", [-1, -1]),
            _spec("top_probs", "FP32", [-1, -1]),
        ]
        platform = "lnrnn"
    else:
        cfg = runtime.meta.config
        state = [cfg.layers, -1, cfg.state_size]
        inputs = [_spec("token", "INT64", [-1]), _spec("state", "FP32", state)]
        outputs = [_spec("logprobs", "FP32", [-1, VOCAB_SIZE]), _spec("state_out", "FP32", state)]
        platform = "onnxruntime_onnx"
    return {"name": name, "versions": [VERSION], "platform": platform, "inputs": inputs, "outputs": outputs}


def _spec(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


@dataclass(frozen=True)
class Sequence:
    """The sequence extension's request parameters (``id`` None: not part of a sequence)."""

    id: str | None
    start: bool
    end: bool

    @classmethod
    def parse(cls, parameters: dict[str, Any]) -> Sequence:
        raw = parameters.get("sequence_id", 0)
        start = _bool(parameters.get("sequence_start", False), "sequence_start")
        end = _bool(parameters.get("sequence_end", False), "sequence_end")
        if isinstance(raw, bool) or not isinstance(raw, int | str) or (isinstance(raw, int) and raw < 0):
            raise BadRequest("parameters.sequence_id must be a non-negative integer or a string")
        if raw in (0, ""):
            if start or end:
                raise BadRequest("sequence_start and sequence_end need a non-zero sequence_id")
            return cls(None, False, False)
        return cls(f"{SESSION_PREFIX}{raw}", start, end)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"parameters.{name} must be true or false")
    return value


def _check_parameters(request: InferRequest, allowed: set[str], model: str) -> None:
    unknown = set(request.parameters) - allowed - IGNORED_PARAMETERS
    if unknown:
        raise BadRequest(
            f"model {model!r} does not take parameter(s) {sorted(unknown)}; it takes {sorted(allowed)}"
        )


def _top_k(parameters: dict[str, Any]) -> int:
    k = parameters.get("top_k", 0)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_TOP_K:
        raise BadRequest(f"parameters.top_k must be an integer from 1 to {MAX_TOP_K} (0 or absent: none)")
    return k


def _texts(request: InferRequest, settings: Settings) -> list[bytes]:
    if set(request.inputs) != {"text"}:
        raise BadRequest(f"model {TEXT_MODEL!r} takes one input, 'text'; got {sorted(request.inputs)}")
    tensor = request.inputs["text"]
    if tensor.datatype != "BYTES" or len(tensor.shape) != 1:
        raise BadRequest(
            f"input 'text' must be BYTES with shape [n], got {tensor.datatype} {list(tensor.shape)}"
        )
    texts = list(tensor.data)
    if not texts:
        raise BadRequest("input 'text' is empty: send at least one text")
    if len(texts) > settings.max_batch:
        raise BadRequest(
            f"input 'text' has {len(texts)} texts; the limit is {settings.max_batch} (LNRNN_MAX_BATCH)"
        )
    for i, data in enumerate(texts):
        if not data:
            raise BadRequest(f"text {i} is empty: every text needs at least one byte")
    check_size(sum(map(len, texts)), settings, "the batch")
    return texts


def _text_outputs(
    runtime: Runtime, texts: list[bytes], nats: list[float], ends: list[tuple[np.ndarray, np.ndarray]], k: int
) -> list[Tensor]:
    """bits, bits_per_byte and (k > 0) the next characters after each text; runs in the gate's worker."""
    bits = np.array([nats_to_bits(n) for n in nats], dtype=np.float32)
    bpb = np.array([bits_per_byte(n, len(t)) for n, t in zip(nats, texts, strict=True)], dtype=np.float32)
    outputs = [number_tensor("bits", "FP32", bits), number_tensor("bits_per_byte", "FP32", bpb)]
    if k:
        chars: list[bytes] = []
        probs = np.zeros((len(texts), k), dtype=np.float32)
        for row, (last, state) in enumerate(ends):
            found = top_chars(runtime, last, state, k)
            for col in range(k):
                char, p = found[col] if col < len(found) else ("", 0.0)  # fewer than k: padded
                chars.append(char.encode("utf-8"))
                probs[row, col] = p
        outputs += [
            bytes_tensor("top_chars", chars, (len(texts), k)),
            number_tensor("top_probs", "FP32", probs),
        ]
    return outputs


async def infer_text(
    request: InferRequest, runtime: Runtime, settings: Settings, gate: InferenceGate, store: SessionStore
) -> list[Tensor]:
    _check_parameters(request, TEXT_PARAMETERS, TEXT_MODEL)
    k = _top_k(request.parameters)
    sequence = Sequence.parse(request.parameters)
    texts = _texts(request, settings)
    if sequence.id is None:

        def stateless() -> list[Tensor]:
            scored = runtime.scorer.score_many(texts)
            return _text_outputs(runtime, texts, [s.nats for s in scored], [_end(s) for s in scored], k)

        return await gate.run(stateless)
    if len(texts) != 1:
        raise BadRequest(f"a sequence request carries one text (shape [1]), got {len(texts)}")
    return await _infer_sequence(sequence, texts[0], k, runtime, gate, store)


def _end(scored: Scored) -> tuple[np.ndarray, np.ndarray]:
    assert scored.last is not None and scored.state is not None  # score_many always returns them
    return scored.last, scored.state


async def _infer_sequence(
    sequence: Sequence, data: bytes, k: int, runtime: Runtime, gate: InferenceGate, store: SessionStore
) -> list[Tensor]:
    assert sequence.id is not None
    session: Session | None = None
    if not sequence.start:
        try:
            session = store.get(sequence.id)
        except NotFound:
            raise NotFound(
                f"sequence {sequence.id.removeprefix(SESSION_PREFIX)!r} is not open (never started, ended, "
                "evicted or idle past LNRNN_SESSION_TTL_S): send its first piece with sequence_start=true"
            ) from None

    def work(session: Session | None) -> tuple[Fed, list[Tensor]]:
        if session is None:
            fed = runtime.scorer.feed_text(data)
        else:
            fed = runtime.scorer.feed_text(data, session.state, session.last)
        outputs = _text_outputs(runtime, [data], [float(fed.nats[0])], [(fed.last[0], fed.state)], k)
        return fed, outputs

    if session is None:
        old = store.peek(sequence.id)
        if old is not None:  # a new start replaces the sequence of the same id
            store.remove(old)
        store.make_room()
        fed, outputs = await gate.run(lambda: work(None))
        if not sequence.end:
            store.add(fed.state, fed.last[0], len(data), float(fed.nats[0]), session_id=sequence.id)
        return outputs
    async with session.lock:  # pieces of one sequence never interleave
        store.get(sequence.id)
        fed, outputs = await gate.run(lambda: work(session))
        session.advance(fed.state, fed.last[0], len(data), float(fed.nats[0]))
        if sequence.end:
            store.remove(session)
    return outputs


async def infer_step(request: InferRequest, runtime: Runtime, gate: InferenceGate) -> list[Tensor]:
    """One step of the graph for the rows of ``token``; the client keeps ``state_out`` for the next call."""
    _check_parameters(request, {"binary_data_output"}, STEP_MODEL)
    unknown = set(request.inputs) - set(STEP_INPUTS)
    if unknown or "token" not in request.inputs:
        raise BadRequest(
            f"model {STEP_MODEL!r} takes 'token' and optionally 'state'; got {sorted(request.inputs)}"
        )
    token = request.inputs["token"]
    if (
        token.datatype not in ("INT64", "INT32")
        or len(token.shape) != 1
        or not 1 <= token.shape[0] <= MAX_STEP_ROWS
    ):
        raise BadRequest(
            f"input 'token' must be INT64 with shape [B], 1 <= B <= {MAX_STEP_ROWS}; got "
            f"{token.datatype} {list(token.shape)}"
        )
    tokens = token.data.astype(np.int64)
    if tokens.min() < 0 or tokens.max() > BOS_ID:
        raise BadRequest(f"input 'token' holds ids outside 0..{BOS_ID} (bytes, then BOS = {BOS_ID})")
    batch = tokens.shape[0]
    cfg = runtime.meta.config
    expected = (cfg.layers, batch, cfg.state_size)
    if "state" in request.inputs:
        state_in = request.inputs["state"]
        if state_in.datatype != "FP32" or state_in.shape != expected:
            raise BadRequest(
                f"input 'state' must be FP32 with shape {list(expected)} ([layers, B, state size]); got "
                f"{state_in.datatype} {list(state_in.shape)}"
            )
        state = np.ascontiguousarray(state_in.data, dtype=np.float32)
        if not np.isfinite(state).all():
            raise BadRequest("input 'state' holds NaN or infinity")
    else:
        state = runtime.scorer.start_state(batch)

    def step() -> list[Tensor]:
        logprobs, state_out = runtime.step_session.run(STEP_OUTPUTS, {"token": tokens, "state": state})
        return [number_tensor("logprobs", "FP32", logprobs), number_tensor("state_out", "FP32", state_out)]

    return await gate.run(step)
