"""``/v1/sessions``: score a text once, then pay only for what is appended (typing assistants, streams).

The bits and candidates of a session equal those of ``/v1/score`` and ``/v1/predict`` on the concatenated
text (the scorer's numbers do not depend on where a call stops). Inference runs through the gate like every
other route; a session's state changes only after its append succeeded.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from lnrnn.bpc import nats_to_bits
from lnrnn.scorer import Fed
from lnrnn.serve.engine.decode import top_chars
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.serve.engine.sessions import Session
from lnrnn.serve.http.deps import GateDep, MetricsDep, RuntimeDep, SettingsDep, StoreDep, require_json
from lnrnn.serve.http.limits import encode_text
from lnrnn.serve.http.schemas import ERRORS, ErrorResponse
from lnrnn.serve.v1.complete import CompleteOptions, CompleteResponse, search_from
from lnrnn.serve.v1.routes import candidates_response
from lnrnn.serve.v1.schemas import (
    PredictResponse,
    SessionAppended,
    SessionCreated,
    SessionInfo,
    SessionRequest,
)

SESSION_ERRORS = ERRORS | {
    404: {"model": ErrorResponse, "description": "no such session (unknown, deleted, evicted or expired)"},
    429: {"model": ErrorResponse, "description": "every session slot (LNRNN_MAX_SESSIONS) is busy"},
}
router = APIRouter(
    prefix="/v1/sessions", tags=["sessions"], responses=SESSION_ERRORS, dependencies=[Depends(require_json)]
)


def _continue(
    runtime: Runtime, session: Session | None, data: bytes, top_k: int, temperature: float
) -> tuple[Fed | None, float, PredictResponse]:
    """Feed ``data`` after the session's text (or as a new document), then list the next characters.
    Returns the fed result (None for an empty append), its nats and the candidates."""
    if session is None:
        fed = runtime.scorer.feed_text(data)
    elif data:
        fed = runtime.scorer.feed_text(data, session.state, session.last)
    else:
        found = top_chars(runtime, session.last, session.state, top_k, temperature)
        return None, 0.0, candidates_response(found)
    found = top_chars(runtime, fed.last[0], fed.state, top_k, temperature)
    return fed, float(fed.nats[0]), candidates_response(found)


@router.post("", status_code=201, response_model=SessionCreated, summary="start a session with a text")
async def create(
    req: SessionRequest,
    runtime: RuntimeDep,
    settings: SettingsDep,
    gate: GateDep,
    metrics: MetricsDep,
    store: StoreDep,
) -> SessionCreated:
    data = encode_text(req.text, settings)
    store.make_room()  # refuse (429) before computing when every session is busy
    fed, nats, found = await gate.run(lambda: _continue(runtime, None, data, req.top_k, req.temperature))
    assert fed is not None  # a new document always feeds BOS
    session = store.add(fed.state, fed.last[0], len(data), nats)
    metrics.bytes_scored.inc(len(data))
    return SessionCreated(
        session_id=session.id,
        bytes=len(data),
        bits=nats_to_bits(nats),
        candidates=found.candidates,
        other=found.other,
        expires_in_s=store.expires_in(session),
    )


@router.post("/{session_id}/append", response_model=SessionAppended, summary="append text to a session")
async def append(
    session_id: str,
    req: SessionRequest,
    runtime: RuntimeDep,
    settings: SettingsDep,
    gate: GateDep,
    metrics: MetricsDep,
    store: StoreDep,
) -> SessionAppended:
    data = encode_text(req.text, settings)
    session = store.get(session_id)
    async with session.lock:  # appends to one session never interleave
        store.get(session_id)  # still there (not deleted while this append waited), and marked used
        fed, nats, found = await gate.run(
            lambda: _continue(runtime, session, data, req.top_k, req.temperature)
        )
        if fed is not None:
            session.advance(fed.state, fed.last[0], len(data), nats)
    metrics.bytes_scored.inc(len(data))
    return SessionAppended(
        bytes=len(data),
        bits=nats_to_bits(nats),
        total_bytes=session.total_bytes,
        total_bits=nats_to_bits(session.total_nats),
        candidates=found.candidates,
        other=found.other,
        expires_in_s=store.expires_in(session),
    )


@router.post(
    "/{session_id}/complete",
    response_model=CompleteResponse,
    summary="most likely completions of a session's text (the session is not changed)",
    description="As POST /v1/complete on the session's text, from its held state: the text is not fed "
    "again, and completing changes neither the state nor the totals. It waits for a running append.",
)
async def complete(
    session_id: str, req: CompleteOptions, runtime: RuntimeDep, gate: GateDep, store: StoreDep
) -> CompleteResponse:
    session = store.get(session_id)
    async with session.lock:  # sees every append sent before it
        store.get(session_id)  # still there, and marked used
        last, state = session.last, session.state
        return await gate.run(lambda: search_from(runtime, last, state, req))


@router.get("/{session_id}", response_model=SessionInfo, summary="a session's totals and age")
async def info(session_id: str, store: StoreDep) -> SessionInfo:
    session = store.get(session_id, touch=False)  # reading the totals does not keep a session alive
    now = store.clock()
    bits = nats_to_bits(session.total_nats)
    return SessionInfo(
        session_id=session.id,
        total_bytes=session.total_bytes,
        total_bits=bits,
        bits_per_byte=bits / session.total_bytes if session.total_bytes else None,
        age_s=now - session.created,
        idle_s=now - session.used,
        expires_in_s=store.expires_in(session),
    )


@router.delete("/{session_id}", status_code=204, response_class=Response, summary="delete a session")
async def delete(session_id: str, store: StoreDep) -> Response:
    session = store.get(session_id)
    async with session.lock:  # a running append finishes first
        store.remove(session)
    return Response(status_code=204)
