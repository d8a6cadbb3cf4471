"""Log analysis behind ``hapa-telemetry logs``: JSON log files and Elasticsearch.

Modules: ``sources`` (files in time order, gzip, stdin), ``scan`` (the streaming reader
and its byte-level fast path), ``filters``, ``reports`` (errors, latency, inference),
``quantiles`` (bounded percentiles), ``render`` (tables), ``es`` (the same questions as
Elasticsearch aggregations) and ``run`` (what the command line calls).
"""
