"""The one endpoint every benchmark variant serves (same code, same JSON)."""

from __future__ import annotations

from fastapi import FastAPI


def add_routes(app: FastAPI) -> FastAPI:
    """``GET /api/v1/items/{item_id}``: a path parameter and a small JSON body."""

    @app.get("/api/v1/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, object]:
        return {"item_id": item_id, "name": "widget", "price": 9.99, "tags": ["a", "b"]}

    return app
