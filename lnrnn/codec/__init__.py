"""Lossless compression with the byte-level model: range coding driven by the step graph, optionally mixed
with online context models of the text being coded (``lnrnn compress`` / ``lnrnn decompress``).

Torch-free: numpy, onnxruntime and constriction. The format is described in ``container.py``, the block
layout in ``engine.py``, the adaptive model in ``mixer.py``.
"""

from lnrnn.codec.api import Compressed, compress, decompress, information
from lnrnn.codec.container import Header, unpack
from lnrnn.codec.engine import DEFAULT_BLOCK_SIZE, DEFAULT_LANES, lanes_for
from lnrnn.codec.errors import ChecksumMismatch, CodecError, ContainerError, ModelFileError, ModelMismatch
from lnrnn.codec.model import StepGraph

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_LANES",
    "ChecksumMismatch",
    "CodecError",
    "Compressed",
    "ContainerError",
    "Header",
    "ModelFileError",
    "ModelMismatch",
    "StepGraph",
    "compress",
    "decompress",
    "information",
    "lanes_for",
    "unpack",
]
