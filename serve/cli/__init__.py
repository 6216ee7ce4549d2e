"""The serving commands (lnrnn serve, score, predict, generate, compress, decompress) and their I/O."""
