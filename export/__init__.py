"""Export stage: PyTorch checkpoint -> self-describing ONNX model directory."""
