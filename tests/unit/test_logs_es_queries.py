"""hapa-telemetry logs --es: query building, field layout, and failures (no real node needed)."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest
from _logdata import run_cli

from hapa_telemetry.analysis.es import Layout, filter_clauses, level_clause, to_record
from hapa_telemetry.analysis.filters import Filters

OTEL_CAPS = {
    "@timestamp": {"date": {}},
    "severity_text": {"keyword": {}},
    "severity_number": {"byte": {}},
    "body.text": {"text": {}},
    "trace_id": {"keyword": {}},
    "span_id": {"keyword": {}},
    "attributes.user_id": {"text": {}},
    "attributes.user_id.keyword": {"keyword": {}},
    "attributes.event_type": {"keyword": {}},
    "attributes.endpoint": {"keyword": {}},
    "attributes.duration": {"float": {}},
}


RAW_CAPS = {  # the collector's documents (docs/elasticsearch.md), dynamic mapping
    "@timestamp": {"date": {}},
    "SeverityText": {"text": {}},
    "SeverityText.keyword": {"keyword": {}},
    "SeverityNumber": {"long": {}},
    "Body": {"text": {}},
    "message": {"text": {}},
    "message.keyword": {"keyword": {}},
    "TraceId": {"text": {}},
    "TraceId.keyword": {"keyword": {}},
    "user_id": {"text": {}},
    "user_id.keyword": {"keyword": {}},
    "duration": {"double": {}},
}


def test_layout_reads_the_collectors_raw_documents():
    """The collector's layout: top-level attributes, SeverityNumber, TraceId.keyword."""
    layout = Layout(RAW_CAPS)
    assert layout["user_id"].exact == "user_id.keyword"
    assert layout["trace_id"].exact == "TraceId.keyword"
    assert layout["duration"].path == "duration"
    assert level_clause("ERROR", layout) == {"range": {"SeverityNumber": {"gte": 17}}}


def test_competing_paths_go_to_the_one_documents_have():
    """A path mapped by a template but empty loses to the one that holds the data."""
    caps = {**OTEL_CAPS, "duration": {"double": {}}}
    assert Layout(caps)["duration"].path == "duration"  # table order when nothing is known
    usage = {"duration": 0, "attributes.duration": 12}
    assert Layout(caps, usage)["duration"].path == "attributes.duration"


def test_layout_resolves_otel_paths_and_keyword_subfields():
    """Fields resolve to the path present; text fields use their .keyword sub-field."""
    layout = Layout(OTEL_CAPS)
    assert layout["user_id"].exact == "attributes.user_id.keyword"
    assert layout["event_type"].exact == "attributes.event_type"
    assert layout["message"].path == "body.text"
    assert layout["timestamp"].path == "@timestamp"


def test_layout_falls_back_to_top_level_fields():
    """Documents indexed straight from the JSON files (top-level fields) are understood too."""
    layout = Layout({"timestamp": {"date": {}}, "level": {"keyword": {}},
                     "user_id": {"keyword": {}}, "message": {"text": {}}})
    assert layout["user_id"].exact == "user_id"
    assert layout["timestamp"].path == "timestamp"
    assert level_clause("ERROR", layout) == {
        "terms": {"level": ["CRITICAL", "ERROR", "FATAL", "critical", "error", "fatal"]}}


def test_filters_become_bool_filter_clauses():
    """Every filter maps to an ES clause: term, prefix, range, terms, wildcard, phrase."""
    layout = Layout(OTEL_CAPS)
    filters = Filters.build(user="user123", trace="4bf92f35", level="WARNING",
                            events=["request_end"], endpoint="/api/v1/*", since=1000.0,
                            until=2000.5, grep="timed out")
    clauses = filter_clauses(filters, layout)
    assert {"term": {"attributes.user_id.keyword": "user123"}} in clauses
    assert {"prefix": {"trace_id": "4bf92f35"}} in clauses
    assert {"range": {"severity_number": {"gte": 13}}} in clauses
    assert {"terms": {"attributes.event_type": ["request_end"]}} in clauses
    assert {"wildcard": {"attributes.endpoint": {"value": "/api/v1/*"}}} in clauses
    assert {"range": {"@timestamp": {"format": "epoch_millis", "gte": 1000000,
                                      "lt": 2000500}}} in clauses
    assert {"match_phrase": {"body.text": "timed out"}} in clauses


def test_hits_become_log_lines_with_file_field_names():
    """A document (nested or dotted keys) reads back as a line with the file's names."""
    layout = Layout(OTEL_CAPS)
    hit = {"_source": {"@timestamp": "2026-11-26T06:48:37.123Z", "severity_text": "INFO",
                       "body": {"text": "hello"}, "trace_id": "ab" * 16,
                       "attributes": {"user_id": "user123", "duration": 0.5}}}
    record = to_record(hit, layout)
    assert record == {"timestamp": "2026-11-26T06:48:37.123Z", "level": "INFO",
                      "message": "hello", "trace_id": "ab" * 16, "user_id": "user123",
                      "duration": 0.5}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_elasticsearch_is_a_one_line_error(capsys):
    """Nothing listening at --es URL: exit 1 and one line naming the URL."""
    url = f"http://127.0.0.1:{_free_port()}"
    status, out, err = run_cli(["logs", "errors", "--es", url, "--timeout", "2"], capsys)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "cannot reach Elasticsearch" in err and url in err


class _NotElasticsearch(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>hello</html>")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_es():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotElasticsearch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_is_not_elasticsearch_is_a_one_line_error(not_es, capsys):
    """A web server that does not speak the ES API gives exit 1, one line."""
    status, _, err = run_cli(["logs", "latency", "--es", not_es], capsys)
    assert status == 1 and err.count("\n") == 1 and "is it Elasticsearch" in err


def test_es_and_paths_do_not_mix(capsys):
    """--es with a PATH is a usage error (status 2)."""
    status, _, err = run_cli(["logs", "logs/", "--es", "http://127.0.0.1:9"], capsys)
    assert status == 2 and "--es" in err
