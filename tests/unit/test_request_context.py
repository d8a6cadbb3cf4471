"""bind() from every place a request's code runs: async and plain def endpoints, the
thread pool, BackgroundTasks — on every later line of that request and on its span, and
never on another request's."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
from conftest import Harness
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.concurrency import run_in_threadpool

import hapa_telemetry
from hapa_telemetry import context

_log = hapa_telemetry.StructuredLogger("handler")


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/sync")
    def sync_endpoint(u: str) -> dict[str, Any]:  # FastAPI runs it in a worker thread
        hapa_telemetry.bind(user_id=u)
        _log.info("in sync handler")
        return {"thread": threading.current_thread().name}

    @app.get("/pool")
    async def pool(u: str) -> dict[str, Any]:
        def work() -> None:
            hapa_telemetry.bind(user_id=u, plan="pro")

        await run_in_threadpool(work)
        _log.info("after pool")
        return {}

    @app.get("/background")
    async def background(u: str, tasks: BackgroundTasks) -> dict[str, Any]:
        def later() -> None:
            hapa_telemetry.bind(job_user=u)
            _log.info("background work")

        tasks.add_task(later)
        return {}

    @app.get("/slow-sync")
    def slow_sync(u: str) -> dict[str, Any]:
        hapa_telemetry.bind(user_id=u)
        import time

        time.sleep(0.05)  # overlap with the other requests
        _log.info("slow sync done")
        return {}

    @app.get("/plain")
    async def plain(request: Request) -> dict[str, Any]:
        _log.info("plain")
        return {}

    hapa_telemetry.instrument_fastapi(app)
    return app


def ends(h: Harness) -> list[dict[str, Any]]:
    return [x for x in h.lines() if x.get("event_type") == "request_end"]


def server_spans(h: Harness) -> list[Any]:
    return [s for s in h.spans.get_finished_spans() if s.kind.name == "SERVER"]


def test_bind_in_a_plain_def_endpoint_reaches_request_end_and_the_span(harness: Harness) -> None:
    """A field bound in a sync endpoint (worker thread, copied context) is on request_end,
    on the server span, and not on the next request."""
    with TestClient(make_app()) as c:
        assert c.get("/sync", params={"u": "u-sync"}).status_code == 200
        assert c.get("/plain").status_code == 200
    first, second = ends(harness)
    assert first["user_id"] == "u-sync" and first["endpoint"] == "/sync"
    assert "user_id" not in second
    in_handler = [x for x in harness.lines() if x["message"] == "in sync handler"][0]
    assert in_handler["user_id"] == "u-sync"
    spans = server_spans(harness)
    assert spans[0].attributes["enduser.id"] == "u-sync"
    assert "enduser.id" not in spans[1].attributes


def test_bind_in_run_in_threadpool_and_background_tasks(harness: Harness) -> None:
    """run_in_threadpool and BackgroundTasks bind onto the same request's later lines."""
    with TestClient(make_app()) as c:
        c.get("/pool", params={"u": "u-pool"})
        c.get("/background", params={"u": "u-bg"})
    pool_end, bg_end = ends(harness)
    assert pool_end["user_id"] == "u-pool" and pool_end["plan"] == "pro"
    after = [x for x in harness.lines() if x["message"] == "after pool"][0]
    assert after["user_id"] == "u-pool"
    assert bg_end["job_user"] == "u-bg" and "user_id" not in bg_end
    spans = server_spans(harness)
    assert spans[0].attributes["app.plan"] == "pro"
    assert spans[1].attributes["app.job_user"] == "u-bg"


async def test_concurrent_requests_keep_their_own_bound_fields(harness: Harness) -> None:
    """Forty overlapping sync requests each see only their own user_id, on every line."""
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        results = await asyncio.gather(
            *(c.get("/slow-sync", params={"u": f"user-{i}"}) for i in range(40))
        )
    assert all(r.status_code == 200 for r in results)
    by_request: dict[str, set[str]] = {}
    for line in harness.lines():
        if "request_id" in line and line.get("endpoint", "/slow-sync") == "/slow-sync":
            if line.get("event_type") == "request_start":
                continue  # written before the handler bound anything
            by_request.setdefault(line["request_id"], set()).add(line.get("user_id", "?"))
    assert len(by_request) == 40
    assert all(len(users) == 1 and "?" not in users for users in by_request.values())
    assert {u for users in by_request.values() for u in users} == {
        f"user-{i}" for i in range(40)
    }
    for span in server_spans(harness):
        rid = span.attributes["http.request.id"]
        assert {span.attributes["enduser.id"]} == by_request[rid]


def test_outside_a_request_bind_is_per_context(harness: Harness) -> None:
    """Outside a request, bind() binds for the current context only; bound() restores."""
    seen: list[Any] = []

    def other_thread() -> None:
        seen.append(dict(context.bound_fields()))

    context.clear()
    hapa_telemetry.bind(worker="w1")
    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert seen == [{}]
    with hapa_telemetry.bound(job="j1"):
        assert dict(context.bound_fields()) == {"worker": "w1", "job": "j1"}
    assert dict(context.bound_fields()) == {"worker": "w1"}
    hapa_telemetry.unbind("worker")
    assert dict(context.bound_fields()) == {}


def test_bind_inside_a_bound_block_lasts_for_the_request(harness: Harness) -> None:
    """bound() is temporary, but a bind() inside it still reaches request_end."""
    app = FastAPI()

    @app.get("/x")
    def x() -> dict[str, Any]:
        with hapa_telemetry.bound(step="load"):
            hapa_telemetry.bind(user_id="u-inner")
            _log.info("inside block")
        _log.info("after block")
        return {}

    hapa_telemetry.instrument_fastapi(app)
    with TestClient(app) as c:
        c.get("/x")
    lines = harness.lines()
    inside = [x for x in lines if x["message"] == "inside block"][0]
    after = [x for x in lines if x["message"] == "after block"][0]
    assert inside["step"] == "load" and inside["user_id"] == "u-inner"
    assert "step" not in after and after["user_id"] == "u-inner"
    assert ends(harness)[0]["user_id"] == "u-inner"
