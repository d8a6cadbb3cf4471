"""The demo: a fake code-generation model with a cache, a path-parameter route, a route
that raises, and a chaos knob (extra latency / error share) for the alerting tests.

The code-generation endpoint answers JSON, or streams its answer token by token as
server-sent events (``"stream": true`` or ``Accept: text/event-stream``) through
``call.stream``: time to first token, tokens/s and early stops show in the telemetry.

Run: ``hapa-telemetry demo`` or ``uvicorn hapa_telemetry.demo.app:app``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

import hapa_telemetry
from hapa_telemetry import APIMonitor, StructuredLogger

hapa_telemetry.configure()
app = FastAPI(title="HAPA demo")
hapa_telemetry.instrument_fastapi(app)

logger = StructuredLogger("code_generation")
monitor = APIMonitor()

MODEL = "hapa-codegen-demo"
PROVIDER = "hapa"  # gen_ai.provider.name: the demo's own (fake) model server
_BASE_DELAY = float(os.environ.get("DEMO_MODEL_DELAY", "0.05"))
_TOKEN_DELAY = float(os.environ.get("DEMO_TOKEN_DELAY", "0.005"))
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_cache: dict[str, str] = {}
_stats = {"hits": 0, "lookups": 0}
_chaos = {"delay": 0.0, "error_rate": 0.0}


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=20_000)
    user_id: str | None = None
    language: str = "python"
    stream: bool = False


class GenerateResponse(BaseModel):
    code: str
    cached: bool
    model: str


class Chaos(BaseModel):
    delay: float = Field(0.0, ge=0.0, le=30.0)
    error_rate: float = Field(0.0, ge=0.0, le=1.0)


def _fake_model(prompt: str, language: str) -> str:
    digest = hashlib.sha256(f"{language}:{prompt}".encode()).hexdigest()[:8]
    name = "generated_" + digest
    return f"def {name}():\n    \"\"\"{prompt[:60]}\"\"\"\n    return {len(prompt)}\n"


async def _chaos_step() -> None:
    if _chaos["delay"]:
        await asyncio.sleep(_chaos["delay"])
    if _chaos["error_rate"] and random.random() < _chaos["error_rate"]:
        raise RuntimeError("chaos: injected failure")


def _tokens(code: str) -> list[str]:
    """The answer split like a tokenizer would (words, punctuation, whitespace runs)."""
    return _TOKEN.findall(code)


async def _generate_tokens(prompt: str, language: str) -> AsyncIterator[str]:
    """The fake model's streamed answer: a prefill delay, then one token at a time."""
    await asyncio.sleep(_BASE_DELAY + min(len(prompt), 2000) / 20_000)
    for token in _tokens(_fake_model(prompt, language)):
        await asyncio.sleep(_TOKEN_DELAY)
        yield token


async def _sse(tokens: AsyncIterator[str], on_end: Any) -> AsyncIterator[str]:
    """Server-sent events: one ``data:`` event per token, then ``event: done``."""
    parts: list[str] = []
    async for token in tokens:
        parts.append(token)
        yield f"data: {json.dumps({'token': token})}\n\n"
    on_end("".join(parts))
    yield f"event: done\ndata: {json.dumps({'model': MODEL, 'cached': False})}\n\n"


def _wants_stream(req: GenerateRequest, request: Request) -> bool:
    return req.stream or "text/event-stream" in request.headers.get("accept", "")


@app.post("/api/v1/code/generate", response_model=GenerateResponse)
async def generate(req: GenerateRequest, request: Request) -> Any:
    """Generate code for a prompt; repeated prompts are served from the cache.

    Streamed (SSE) when asked: a cached answer comes as one event.
    """
    if req.user_id:
        hapa_telemetry.bind(user_id=req.user_id)
    await _chaos_step()
    key = f"{req.language}:{req.prompt}"
    _stats["lookups"] += 1
    stream = _wants_stream(req, request)
    with hapa_telemetry.inference(model=MODEL, provider=PROVIDER, prompt=req.prompt) as call:
        call.usage(input_tokens=max(1, len(req.prompt) // 4))
        code = _cache.get(key)
        if code is not None:
            _stats["hits"] += 1
            call.cached = True
            call.set_response(code)
        elif stream:
            call.cached = False

            def remember(text: str) -> None:
                _cache[key] = text
                _cache_metrics()

            tokens = call.stream(_generate_tokens(req.prompt, req.language))
            return StreamingResponse(_sse(tokens, remember), media_type="text/event-stream")
        else:
            call.cached = False
            # a realistic, deterministic delay: grows with the prompt
            await asyncio.sleep(_BASE_DELAY + min(len(req.prompt), 2000) / 20_000)
            code = _fake_model(req.prompt, req.language)
            _cache[key] = code
            call.set_response(code)
            call.usage(output_tokens=len(_tokens(code)))
    _cache_metrics()
    logger.info("code generated", language=req.language, cached=call.cached)
    if stream:
        event = json.dumps({"token": code})
        done = json.dumps({"model": MODEL, "cached": True})
        body = f"data: {event}\n\nevent: done\ndata: {done}\n\n"
        return StreamingResponse(iter([body]), media_type="text/event-stream")
    return GenerateResponse(code=code, cached=call.cached, model=MODEL)


def _cache_metrics() -> None:
    monitor.log_cache_metrics(_stats["hits"] / max(1, _stats["lookups"]), len(_cache))


@app.get("/api/v1/items/{item_id}")
async def get_item(item_id: int) -> dict[str, Any]:
    """A route with a path parameter (the endpoint label stays the template)."""
    await _chaos_step()
    if item_id < 0:
        raise HTTPException(status_code=404, detail="no such item")
    return {"item_id": item_id, "name": f"item-{item_id}"}


@app.get("/api/v1/fail")
async def fail() -> dict[str, Any]:
    """Always raises: the client gets a 500, the error is logged and counted."""
    raise ValueError("demo failure")


@app.post("/api/v1/demo/chaos")
async def set_chaos(chaos: Chaos) -> dict[str, float]:
    """Set extra latency (s) and an error share (0–1) for every API call."""
    _chaos["delay"] = chaos.delay
    _chaos["error_rate"] = chaos.error_rate
    logger.warning("chaos changed", delay=chaos.delay, error_rate=chaos.error_rate)
    return dict(_chaos)
