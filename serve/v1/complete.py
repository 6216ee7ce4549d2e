"""``POST /v1/complete``: the n most likely completions of a text (the rest of the word, of the line, or the
next characters), by beam search over bytes (engine/complete.py). The session route is in sessions.py."""

from __future__ import annotations

from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from lnrnn.serve.engine import complete as search
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.serve.http.deps import GateDep, RuntimeDep, SettingsDep, require_json
from lnrnn.serve.http.limits import encode_text
from lnrnn.serve.http.schemas import ERRORS, Request, Utf8Str

UNTIL_DESCRIPTION = (
    "where a completion ends (the character that ends it is included): word = after a space, tab, CR, "
    "newline or ASCII punctuation character; line = after a newline; chars = after exactly max_chars "
    "characters. A word or line completion still open after max_chars characters is kept, with ended false."
)

router = APIRouter(prefix="/v1", tags=["model"], responses=ERRORS, dependencies=[Depends(require_json)])


class CompleteOptions(Request):
    """What to complete; the text is the session's (``/v1/sessions/{id}/complete``) or ``text``."""

    n: int = Field(
        3, ge=1, le=search.MAX_COMPLETIONS, strict=True, description="how many completions to list"
    )
    max_chars: int = Field(
        16, ge=1, le=search.MAX_COMPLETION_CHARS, strict=True, description="characters per completion at most"
    )
    until: Literal["word", "line", "chars"] = Field("word", description=UNTIL_DESCRIPTION)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"n": 3, "until": "word"}]})


class CompleteRequest(CompleteOptions):
    text: Utf8Str = Field("", description="the context; empty = the start of a text")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "Good morrow, neighbour Bap", "n": 3, "until": "word"}]},
    )


class Completion(BaseModel):
    text: str = Field(description="the completion (whole UTF-8 characters), without the context")
    probability: float = Field(description="product of the model's byte probabilities (not renormalised)")
    bits: float = Field(description="-log2(probability)")
    ended: bool = Field(description="false: cut at max_chars before `until` was met")


class CompleteResponse(BaseModel):
    completions: list[Completion] = Field(
        description="most likely first, ties in byte order; fewer than n only if fewer exist"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "completions": [
                        {"text": "tista ", "probability": 0.2183, "bits": 2.196, "ended": True},
                        {"text": "tista,", "probability": 0.1707, "bits": 2.551, "ended": True},
                        {"text": "tista'", "probability": 0.05516, "bits": 4.180, "ended": True},
                    ]
                }
            ]
        }
    )


def search_from(
    runtime: Runtime, last: np.ndarray, state: np.ndarray, req: CompleteOptions
) -> CompleteResponse:
    """The completions after a context's next-byte log-probs and state; beams are rows of the runtime's
    (batched) scorer calls."""
    found = search.complete(
        runtime.scorer.next, last, state, n=req.n, max_chars=req.max_chars, until=req.until
    )
    return CompleteResponse(
        completions=[
            Completion(text=c.text, probability=c.probability, bits=c.bits, ended=c.ended) for c in found
        ]
    )


@router.post(
    "/complete",
    response_model=CompleteResponse,
    summary="most likely completions: the rest of the word, of the line, or the next max_chars characters",
    description="Beam search over bytes, every beam a row of the same model call (beam width "
    f"{search.BEAM_PER_COMPLETION} x n). Exact probabilities of the completions found; deterministic. "
    + UNTIL_DESCRIPTION,
)
async def complete(
    req: CompleteRequest, runtime: RuntimeDep, settings: SettingsDep, gate: GateDep
) -> CompleteResponse:
    data = encode_text(req.text, settings)

    def work() -> CompleteResponse:
        last, state = runtime.context(data)  # the prefix cache: typing pays only for the new bytes
        return search_from(runtime, last, state, req)

    return await gate.run(work)
