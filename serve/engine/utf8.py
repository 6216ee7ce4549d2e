"""Which byte may come next in valid UTF-8 (RFC 3629): masks over the 257 token ids (BOS = 256 never)."""

from __future__ import annotations

import numpy as np

from lnrnn.contract import VOCAB_SIZE


def char_length(lead: int) -> int:
    """Bytes in a character that starts with ``lead``; 0 if ``lead`` cannot start one."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def next_range(lead: int, position: int) -> tuple[int, int]:
    """Inclusive range of the byte at ``position`` (1..3) of a character starting with ``lead``.

    The second byte is narrowed: no overlong forms, no surrogates, nothing above U+10FFFF.
    """
    if position == 1:
        narrowed = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}
        return narrowed.get(lead, (0x80, 0xBF))
    return 0x80, 0xBF


def _mask(ranges: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(VOCAB_SIZE, dtype=bool)
    for lo, hi in ranges:
        mask[lo : hi + 1] = True
    return mask


START_MASK = _mask([(0x00, 0x7F), (0xC2, 0xF4)])  # bytes that may start a character
LEAD_BYTES = np.flatnonzero(START_MASK)


def next_mask(prefix: bytes) -> np.ndarray:
    """Allowed next bytes after ``prefix``, the character's bytes so far (empty = a new character)."""
    if not prefix:
        return START_MASK
    return _mask([next_range(prefix[0], len(prefix))])
