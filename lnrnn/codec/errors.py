"""What can go wrong when compressing or decompressing, each as one line for the user.

They are ``UserError``s: the CLI prints ``lnrnn <command>: error: <message>`` and exits 2; the HTTP routes
answer 4xx with the message.
"""

from __future__ import annotations

from lnrnn.errors import UserError


class CodecError(UserError):
    """Base class of the codec's errors."""


class ModelFileError(CodecError):
    """The model directory has no usable step graph for the requested precision."""


class ContainerError(CodecError):
    """Not an lnrnn container, or its header or block table is truncated or corrupted."""


class ModelMismatch(CodecError):
    """The container was made with another model (or precision) than the one given."""


class ChecksumMismatch(CodecError):
    """The decoded bytes do not match the checksum stored by the encoder."""
