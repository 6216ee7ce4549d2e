"""The size limit every protocol applies to the text it is sent (LNRNN_MAX_TEXT_BYTES)."""

from __future__ import annotations

from lnrnn.serve.config import Settings
from lnrnn.serve.errors import PayloadTooLarge


def encode_text(text: str, settings: Settings, what: str = "text") -> bytes:
    data = text.encode("utf-8")  # lone surrogates were rejected by the schema
    check_size(len(data), settings, what)
    return data


def check_size(n: int, settings: Settings, what: str) -> None:
    if n > settings.max_text_bytes:
        raise PayloadTooLarge(
            f"{what} is {n} UTF-8 bytes; the limit is {settings.max_text_bytes} (LNRNN_MAX_TEXT_BYTES): "
            "send a shorter text"
        )
