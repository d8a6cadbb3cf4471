#!/usr/bin/env python3
"""Zero-code smoke test of an installed hapa-telemetry (e.g. the built wheel in a fresh venv).

    python scripts/wheel_smoke.py VENV

Writes a plain FastAPI app that does not import the package, runs it with
``VENV/bin/opentelemetry-instrument uvicorn app:app`` on 127.0.0.1 (a free port), and
checks what a user sees: a JSON ``request_end`` line on stdout with a 32-hex trace id,
``/metrics`` with ``api_requests_total`` for the route, ``/health`` serving the seed's
document (200 healthy, 503 unhealthy). Standard library only; every wait is bounded; the server is stopped by
its own process group. Exit status 0 when all hold, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

APP = '''
import logging
from fastapi import FastAPI

app = FastAPI()

@app.get("/items/{item_id}")
async def item(item_id: int):
    logging.getLogger("smoke").info("item", extra={"item_id": item_id})
    return {"item_id": item_id}
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            get(url, timeout=1.0)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def smoke(venv: Path) -> list[str]:
    """Run the app and return the failed checks (empty when all passed)."""
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hapa-smoke-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "app.py").write_text(APP)
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OTEL_", "HAPA_", "PYTHON", "VIRTUAL_ENV"))}
        env.update(OTEL_PYTHON_DISTRO="hapa_telemetry",
                   OTEL_PYTHON_CONFIGURATOR="hapa_telemetry",
                   LOG_DIRECTORY=str(tmp / "logs"), PYTHONPATH=str(tmp))
        out_path = tmp / "server.out"
        with out_path.open("wb") as out:
            proc = subprocess.Popen(
                [str(venv / "bin" / "opentelemetry-instrument"), str(venv / "bin" / "uvicorn"),
                 "app:app", "--host", "127.0.0.1", "--port", str(port)],
                cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_up(base + "/health", proc)
            status, _ = get(base + "/items/7")
            if status != 200:
                failures.append(f"GET /items/7 answered {status}")
            counted = re.compile(
                r'^api_requests_total\{[^}]*endpoint="/items/\{item_id\}"[^}]*\} 1\.0$',
                re.MULTILINE,
            )
            for _ in range(20):  # the count lands as the response ends: allow a moment
                status, body = get(base + "/metrics")
                if status == 200 and counted.search(body):
                    break
                time.sleep(0.25)
            else:
                failures.append(f"/metrics ({status}) has no api_requests_total for the route")
            # 503 is a right answer on a busy machine (CPU over the threshold): the check
            # is that the seed's health document is served with the matching status code.
            status, body = get(base + "/health")
            doc = json.loads(body)
            want = {"healthy": 200, "unhealthy": 503}.get(doc.get("status"))
            if status != want or not {"system", "application"} <= doc.keys():
                failures.append(f"/health answered {status}: {body[:200]}")
        except (OSError, RuntimeError, ValueError) as exc:
            failures.append(f"server: {exc!r}")
        finally:
            stop(proc)
        lines = []
        for raw in out_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        ends = [ln for ln in lines if ln.get("event_type") == "request_end"
                and ln.get("endpoint") == "/items/{item_id}"]
        if not ends or not re.fullmatch(r"[0-9a-f]{32}", str(ends[0].get("trace_id", ""))):
            failures.append("no JSON request_end line with a trace id on stdout")
            sys.stderr.write(out_path.read_text(errors="replace")[-3000:])
        elif not failures:
            print(f"wheel smoke: request_end trace_id={ends[0]['trace_id']}, "
                  f"/metrics and /health ok ({len(lines)} JSON lines)")
    return failures


def main() -> int:
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    failures = smoke(Path(sys.argv[1]).resolve())
    for failure in failures:
        sys.stderr.write(f"wheel smoke FAILED: {failure}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
