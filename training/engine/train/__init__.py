"""Training: the loop and its state, how a run ends, LoRA, speed, batches, checkpoints."""
