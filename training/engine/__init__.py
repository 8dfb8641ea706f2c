"""SLM Lab's ML engine: plain Python (no Django), usable alone and from management commands.

- ``config``: :class:`RunConfig`, every setting of a fine-tuning run, validated and in YAML.
- ``data/``: a dataset file to training examples, one stage a module, in pipeline order:
  ``formats`` (read the file) → ``shapes`` (normalise each row to a record) →
  ``prompts`` (render it with a prompt template) → ``tokenize`` (token ids, trained vs
  masked) → ``split`` (hold out validation rows); ``records`` validates whole files,
  ``pipeline`` runs the stages for a run, ``stats`` and ``samples`` sit beside them.
- ``models/``: architecture facts read from ``config.json`` (``arch``), the curated
  ``catalog``, the local ``store`` (safe loading), ``hub`` downloads and the ``memory``
  estimate.
- ``train/``: the training loop (``loop``: the state in one :class:`Trainer`), how a
  run ends (``outcome``), LoRA, speed-ups, batches, checkpoints, process memory.
- ``evaluate/``: validation loss.
- ``inference/``: generation (chat with a base model and its adapter).

Subpackage ``__init__`` modules import nothing, so importing a light module (the memory
estimate, the data readers, checkpoint listings) never pulls in torch.
"""
