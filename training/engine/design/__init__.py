"""Model design: a decoder-only transformer composed from blocks, its counts, tokenizer,
pretraining corpus and pretraining. ``spec`` and ``counts`` import no torch."""
