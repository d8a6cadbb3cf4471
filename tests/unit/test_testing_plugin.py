"""The ``hapa_capture`` pytest plugin, run the way a user runs it: their test file in a
fresh pytest process that finds the plugin through the ``pytest11`` entry point."""

from __future__ import annotations

import pytest

USER_TESTS = '''
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import hapa_telemetry


def test_a_test_without_the_fixture_configures_nothing():
    from hapa_telemetry import runtime

    assert runtime.current() is None


def make_app():
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int):
        logging.getLogger("shop").info("item looked up", extra={"item_id": item_id})
        return {"id": item_id}

    hapa_telemetry.instrument_fastapi(app)
    return app


def test_request_is_logged_traced_and_counted(hapa_capture):
    client = TestClient(make_app())
    assert client.get("/items/7").status_code == 200
    assert client.get("/items/8").status_code == 200
    ends = hapa_capture.lines(event_type="request_end")
    assert [e["status_code"] for e in ends] == [200, 200]
    assert ends[0]["endpoint"] == "/items/{item_id}"
    spans = hapa_capture.spans("GET /items/{item_id}")
    assert len(spans) == 2
    assert ends[0]["trace_id"] == format(spans[0].context.trace_id, "032x")
    assert hapa_capture.lines(message="item looked up")[1]["item_id"] == 8
    assert hapa_capture.metric(
        "api_requests_total", endpoint="/items/{item_id}", status="200") == 2
    assert hapa_capture.metric("api_requests_total", status="500") == 0
    assert hapa_capture.metric("api_request_duration_seconds") == 2
    assert 0 <= hapa_capture.metric("system_memory_percent") <= 100


def test_the_next_test_starts_clean(hapa_capture):
    assert hapa_capture.lines(event_type="request_end") == []
    assert hapa_capture.spans() == []
    assert hapa_capture.metric("api_requests_total") == 0


@pytest.mark.hapa_telemetry(log_level="WARNING")
def test_settings_from_the_marker(hapa_capture):
    logging.getLogger("shop").info("quiet")
    logging.getLogger("shop").warning("loud")
    assert [line["message"] for line in hapa_capture.lines(logger="shop")] == ["loud"]


def test_an_unknown_metric_is_an_error_not_zero(hapa_capture):
    with pytest.raises(LookupError, match="no_such_metric"):
        hapa_capture.metric("no_such_metric")


def test_clear_forgets_lines_and_spans(hapa_capture):
    TestClient(make_app()).get("/items/1")
    hapa_capture.clear()
    assert hapa_capture.lines() == [] and hapa_capture.spans() == []


def test_after_the_fixture_everything_is_reset():
    from hapa_telemetry import runtime

    assert runtime.current() is None
    root = logging.getLogger()
    assert not [h for h in root.handlers if type(h).__name__ == "HapaHandler"]
'''


def test_a_users_fastapi_tests_pass_with_hapa_capture(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's test file gets lines, spans and metric values from the fixture, each
    test starts clean, a test without the fixture sees nothing configured — also with
    DEBUG=true in the environment (which would switch stdout to plain lines)."""
    monkeypatch.setenv("DEBUG", "true")
    pytester.makepyfile(test_user_app=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=7)


def test_a_failing_expectation_fails_and_an_app_made_at_import_time_is_captured(
    pytester: pytest.Pytester,
) -> None:
    """The fixture's answers are real: a wrong expectation about a line fails the test.
    An app instrumented when its module is imported (before any fixture ran, so the
    package configured itself from the environment) still reports into the capture."""
    pytester.makepyfile(
        test_wrong="""
import logging

def test_expects_a_line_that_was_not_written(hapa_capture):
    logging.getLogger("shop").info("written")
    assert hapa_capture.lines(message="not written")
""",
        test_module_app="""
from fastapi import FastAPI
from fastapi.testclient import TestClient

import hapa_telemetry

app = FastAPI()

@app.get("/ping")
def ping():
    return "pong"

hapa_telemetry.instrument_fastapi(app)

def test_module_level_app(hapa_capture):
    TestClient(app).get("/ping")
    assert [line["status_code"] for line in hapa_capture.lines(event_type="request_end")] \\
        == [200]
    assert hapa_capture.metric("api_requests_total", endpoint="/ping") == 1
    assert len(hapa_capture.spans("GET /ping")) == 1
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, failed=1)


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    """The example test in the README's hapa_capture section runs green as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Testing your app", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    pytester.makepyfile(test_readme_example=example.group(1))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)
