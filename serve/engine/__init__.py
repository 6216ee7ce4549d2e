"""Runs the model: ONNX Runtime, batching, admission, cancellation, caches, sessions, decoding.

No web framework is imported here (a test checks): the routes and the CLI call in, never the reverse."""
