"""Request and response bodies of the session routes (pydantic v2; unknown request fields are rejected)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lnrnn.serve.schemas import MAX_TEMPERATURE, MAX_TOP_K, Candidate, Number, Request, Utf8Str


class SessionRequest(Request):
    text: Utf8Str = Field("", description="text to score and remember (create: the start of a document)")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, strict=True, description="next characters to list")
    temperature: Number = Field(
        1.0, gt=0, le=MAX_TEMPERATURE, allow_inf_nan=False, description="divides the log-probabilities"
    )

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "To be, or not to b", "top_k": 5}]}
    )


class SessionCreated(BaseModel):
    session_id: str = Field(description="128 random bits, URL-safe base64: keep it secret")
    bytes: int = Field(description="UTF-8 bytes of the text")
    bits: float = Field(description="-log2 p(text) as the start of a document: every byte is paid")
    candidates: list[Candidate] = Field(description="most likely next characters after the text")
    other: float = Field(description="probability of everything not listed")
    expires_in_s: float = Field(description="the session is deleted after this long without a call")


class SessionAppended(BaseModel):
    bytes: int = Field(description="UTF-8 bytes appended")
    bits: float = Field(description="bits of the appended text, given everything before it")
    total_bytes: int
    total_bits: float
    candidates: list[Candidate]
    other: float
    expires_in_s: float


class SessionInfo(BaseModel):
    session_id: str
    total_bytes: int
    total_bits: float
    bits_per_byte: float | None = Field(description="total_bits / total_bytes; null for an empty text")
    age_s: float = Field(description="seconds since the session was created")
    idle_s: float = Field(description="seconds since its last call")
    expires_in_s: float
