"""What every protocol's bodies share (pydantic v2): the request base (unknown fields rejected), text and
number types, the bounds, the error body and the documented error responses."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

MAX_TOP_K = 100
MAX_TEMPERATURE = 100.0


def check_utf8(text: str) -> str:
    """JSON may carry lone surrogates ("\\ud800"); they are not Unicode text and cannot be scored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"contains a lone surrogate (U+{ord(text[err.start]):04X}) at character {err.start}; "
            "send valid Unicode (pair surrogates or remove them)"
        ) from None
    return text


def _json_number(value: object) -> object:
    """A JSON number only: pydantic's lax float would take ``true`` and ``"1.5"`` as well."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"Input should be a number, got {type(value).__name__}")
    return value


Utf8Str = Annotated[str, AfterValidator(check_utf8)]
Number = Annotated[float, BeforeValidator(_json_number)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. invalid_request, payload_too_large")
    message: str = Field(description="what went wrong and what to change")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str
    provider: str | None = None


# The error responses every /v1 route documents in OpenAPI (the bodies are ErrorResponse).
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "the body is not UTF-8 or not parseable JSON (e.g. nested too deeply)"),
        (401, "LNRNN_API_KEY is set and the bearer token is missing or wrong"),
        (413, "text or body over the configured limit"),
        (415, "the body is not sent as application/json"),
        (422, "invalid request: the message says which field and what to change"),
        (503, "model_not_ready: the model is not loaded; overloaded: every slot and the queue are busy"),
        (504, "timeout: the request took longer than LNRNN_REQUEST_TIMEOUT_S"),
    )
}
