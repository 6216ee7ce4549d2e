"""Serving stage: FastAPI on ONNX Runtime. Never imports torch or lnrnn.train."""
