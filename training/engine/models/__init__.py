"""Models: architecture facts, the curated catalog, the local store, Hub downloads, memory."""
