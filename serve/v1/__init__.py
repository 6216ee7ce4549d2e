"""The /v1 REST protocol: predict, score, generate, sessions, surprisal, compress."""
