"""Generation with a base model and, optionally, its LoRA adapter."""
