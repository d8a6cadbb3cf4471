"""The demo: a fake code-generation model with a cache, a path-parameter route, a route
that raises, and a chaos knob (extra latency / error share) for the alerting tests.

Run: ``hapa-telemetry demo`` or ``uvicorn hapa_telemetry.demo.app:app``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

import hapa_telemetry
from hapa_telemetry import APIMonitor, StructuredLogger

hapa_telemetry.configure()
app = FastAPI(title="HAPA demo")
hapa_telemetry.instrument_fastapi(app)

logger = StructuredLogger("code_generation")
monitor = APIMonitor()

MODEL = "hapa-codegen-demo"
_BASE_DELAY = float(os.environ.get("DEMO_MODEL_DELAY", "0.05"))
_cache: dict[str, str] = {}
_stats = {"hits": 0, "lookups": 0}
_chaos = {"delay": 0.0, "error_rate": 0.0}


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=20_000)
    user_id: str | None = None
    language: str = "python"


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


@app.post("/api/v1/code/generate", response_model=GenerateResponse)
async def generate(req: GenerateRequest) -> GenerateResponse:
    """Generate code for a prompt; repeated prompts are served from the cache."""
    if req.user_id:
        hapa_telemetry.bind(user_id=req.user_id)
    await _chaos_step()
    key = f"{req.language}:{req.prompt}"
    _stats["lookups"] += 1
    with hapa_telemetry.inference(model=MODEL, prompt=req.prompt) as call:
        code = _cache.get(key)
        if code is not None:
            _stats["hits"] += 1
            call.cached = True
        else:
            # a realistic, deterministic delay: grows with the prompt
            await asyncio.sleep(_BASE_DELAY + min(len(req.prompt), 2000) / 20_000)
            code = _fake_model(req.prompt, req.language)
            _cache[key] = code
        call.response_length = len(code)
        call.usage(input_tokens=max(1, len(req.prompt) // 4), output_tokens=len(code) // 4)
    monitor.log_cache_metrics(_stats["hits"] / _stats["lookups"], len(_cache))
    logger.info("code generated", language=req.language, cached=call.cached)
    return GenerateResponse(code=code, cached=call.cached, model=MODEL)


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
