"""The models that ship with lnrnn, one folder each; the wheel carries them as package data."""
