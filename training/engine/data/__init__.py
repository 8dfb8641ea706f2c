"""A dataset file to training examples: read, normalise, render, tokenize, split."""
