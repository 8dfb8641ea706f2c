"""SLM Lab ML engine: plain Python (no Django), usable alone and from `manage.py train`."""
