"""The ONNX graphs: step, fast and generic sequence, and the torch-export pieces they are spliced from."""
