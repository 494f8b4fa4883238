"""An in-memory stand-in for Pinecone's data plane, for the real SDK to talk to in tests.

Pinecone is the one backend that cannot run here. This serves the REST endpoints the SDK's
vector methods call (upsert, query, fetch, delete, describe_index_stats) with cosine
scores, per namespace, and the metadata filter operators Parlour uses and a few more.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

Record = dict[str, Any]


class StubError(Exception):
    """A request Pinecone would reject with 400."""


def _matches_op(value: Any, op: str, operand: Any) -> bool:
    present = value is not None
    if op == "$eq":
        return present and bool(value == operand)
    if op == "$ne":
        return bool(value != operand)
    if op == "$in":
        return present and (
            bool(set(value) & set(operand)) if isinstance(value, list) else bool(value in operand)
        )
    if op == "$nin":
        return not present or value not in operand
    if op == "$exists":
        return present == bool(operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return bool({
            "$gt": value > operand, "$gte": value >= operand,
            "$lt": value < operand, "$lte": value <= operand,
        }[op])
    raise StubError(f"unsupported filter operator {op}")


def matches_filter(metadata: dict[str, Any], flt: dict[str, Any]) -> bool:
    """Whether `metadata` satisfies a Pinecone metadata filter."""
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches_filter(metadata, sub) for sub in cond):
                return False
        elif key == "$or":
            if not any(matches_filter(metadata, sub) for sub in cond):
                return False
        elif key.startswith("$"):
            raise StubError(f"unsupported filter operator {key}")
        elif isinstance(cond, dict):
            if not all(_matches_op(metadata.get(key), op, arg) for op, arg in cond.items()):
                return False
        elif not _matches_op(metadata.get(key), "$eq", cond):
            return False
    return True


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity (0 when either vector is zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class PineconeStub:
    """The stub server: namespaces of records, an aiohttp app, start and close."""

    def __init__(self, api_key: str = "stub-key") -> None:
        self.api_key = api_key
        self.namespaces: dict[str, dict[str, Record]] = {}
        self.dimension: int | None = None
        self.requests = 0
        self._runner: web.AppRunner | None = None
        app = web.Application(middlewares=[self._guard])
        app.router.add_post("/vectors/upsert", self._upsert)
        app.router.add_post("/query", self._query)
        app.router.add_get("/vectors/fetch", self._fetch)
        app.router.add_post("/vectors/delete", self._delete)
        app.router.add_post("/describe_index_stats", self._stats)
        self.app = app

    async def start(self, host: str, port: int) -> str:
        """Listen on host:port (0 picks a free port); return the base URL."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        return f"http://{host}:{bound}"

    async def close(self) -> None:
        """Stop the server."""
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        if request.headers.get("Api-Key") != self.api_key:
            return web.json_response({"code": 16, "message": "Invalid API Key"}, status=401)
        try:
            response: web.StreamResponse = await handler(request)
        except (StubError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"code": 3, "message": str(exc), "details": []}, status=400)
        return response

    def _space(self, namespace: str | None) -> dict[str, Record]:
        return self.namespaces.setdefault(namespace or "", {})

    async def _upsert(self, request: web.Request) -> web.Response:
        body = await request.json()
        space = self._space(body.get("namespace"))
        vectors = body["vectors"]
        for vec in vectors:
            values = [float(v) for v in vec["values"]]
            if self.dimension is None:
                self.dimension = len(values)
            if len(values) != self.dimension:
                raise StubError(
                    f"Vector dimension {len(values)} does not match the dimension of the "
                    f"index {self.dimension}"
                )
            # Like Pinecone, keep every number as a float.
            metadata = {
                key: float(value) if isinstance(value, int) and not isinstance(value, bool)
                else value
                for key, value in (vec.get("metadata") or {}).items()
            }
            space[vec["id"]] = {"id": vec["id"], "values": values, "metadata": metadata}
        return web.json_response({"upsertedCount": len(vectors)})

    async def _query(self, request: web.Request) -> web.Response:
        body = await request.json()
        namespace = body.get("namespace") or ""
        space = self._space(namespace)
        by_id = "id" in body
        vector = space[body["id"]]["values"] if by_id else [float(v) for v in body["vector"]]
        if self.dimension is not None and len(vector) != self.dimension:
            raise StubError(f"Vector dimension {len(vector)} does not match {self.dimension}")
        flt = body.get("filter") or {}
        scored = [
            (cosine(vector, rec["values"]), rec)
            for rec in space.values() if matches_filter(rec["metadata"], flt)
        ]
        scored.sort(key=lambda pair: pair[0], reverse=True)
        matches = []
        for score, rec in scored[: int(body["topK"])]:
            match: Record = {"id": rec["id"], "score": score}
            if body.get("includeValues"):
                match["values"] = rec["values"]
            if body.get("includeMetadata") and rec["metadata"]:
                match["metadata"] = rec["metadata"]
            matches.append(match)
        return web.json_response(
            {"matches": matches, "namespace": namespace, "usage": {"readUnits": 1}}
        )

    async def _fetch(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace", "")
        space = self._space(namespace)
        found = {i: space[i] for i in request.query.getall("ids", []) if i in space}
        return web.json_response(
            {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}
        )

    async def _delete(self, request: web.Request) -> web.Response:
        body = await request.json()
        space = self._space(body.get("namespace"))
        if body.get("deleteAll"):
            space.clear()
        elif "ids" in body:
            for vid in body["ids"]:
                space.pop(vid, None)
        elif body.get("filter"):
            flt = body["filter"]
            for vid in [v for v, rec in space.items() if matches_filter(rec["metadata"], flt)]:
                del space[vid]
        else:
            raise StubError("one of ids, filter or deleteAll is required")
        return web.json_response({})

    async def _stats(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        flt = body.get("filter") or {}
        counts = {
            name: sum(1 for rec in space.values() if matches_filter(rec["metadata"], flt))
            for name, space in self.namespaces.items() if space
        }
        return web.json_response({
            "namespaces": {name: {"vectorCount": n} for name, n in counts.items()},
            "dimension": self.dimension or 0,
            "indexFullness": 0.0,
            "totalVectorCount": sum(counts.values()),
            "metric": "cosine",
            "vectorType": "dense",
        })
