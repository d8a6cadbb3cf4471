"""The log path: render (JSON/plain), redact, daily+size files, queue writer, pipeline."""
