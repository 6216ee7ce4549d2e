"""Training stage: the model definition, data, and the training loop (PyTorch)."""
