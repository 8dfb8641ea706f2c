"""Worker code of the exports app."""
