"""lnrnn: layer-norm GRU/LSTM byte-level language models, from training to an HTTP endpoint.

The root package holds only torch-free pieces every stage shares: the artifact contract
(:mod:`lnrnn.contract`), the one BPC function (:mod:`lnrnn.bpc`) and the CLI (:mod:`lnrnn.cli`).
The stages live in ``lnrnn.train`` (PyTorch), ``lnrnn.export`` (ONNX) and ``lnrnn.serve`` (ONNX Runtime).
"""

__version__ = "0.1.0"
