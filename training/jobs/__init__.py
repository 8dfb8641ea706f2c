"""Worker code: what the actors of this app run (see slmlab.jobs for the pattern)."""
