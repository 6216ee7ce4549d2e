"""Checks of exported graphs against PyTorch: the checks, the torch reference, ONNX Runtime sessions."""
