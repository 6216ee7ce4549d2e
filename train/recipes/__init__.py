"""The recipe of the bundled default model (``make default-model``), runnable with ``python -m``.

``corpora`` (which bytes of each English corpus are held out for validation, sha256-checked),
``default_mix`` (the training mix: every byte before those splits, weighted), ``compression`` (bits per
byte of a model next to gzip/bzip2/xz on the held-out splits) and ``model_card`` (that table, written into
the model's README). The benchmarks score the same held-out splits and import them from here.
"""
