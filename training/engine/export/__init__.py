"""Exports that take a tuned model out of the lab: merged weights, GGUF, Modelfile, card."""
