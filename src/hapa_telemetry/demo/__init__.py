"""A small HAPA-like demo service instrumented with hapa-telemetry."""
