"""The Open Inference Protocol (KServe v2 / Triton): tensors, models, routes."""
