"""Prometheus metrics for operators (one registry per app, no globals)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# REST methods counted by name; anything else (aiohttp accepts any token) is `other`.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The label of a client event that no handler knows: one series for all of them.
UNKNOWN_EVENT = "unknown"


class Metrics:
    """Every metric Parlour exports at /internal/metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # (event, outcome) → its counter and latency children; both label sets are the
        # server's own names, so this stays as small as they are.
        self._event_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.connections = Gauge(
            "parlour_connections", "Open Socket.IO connections", ["namespace"], registry=r
        )
        self.events = Counter(
            "parlour_events_total", "Socket.IO events handled", ["event", "outcome"], registry=r
        )
        self.event_latency = Histogram(
            "parlour_event_seconds", "Socket.IO event handling time", ["event"], registry=r
        )
        self.errors = Counter("parlour_errors_total", "Errors by code", ["code"], registry=r)
        self.requests = Counter(
            "parlour_http_requests_total", "REST requests", ["method", "status"], registry=r
        )
        self.messages = Counter("parlour_messages_total", "Messages stored", ["role"], registry=r)
        self.replies = Counter(
            "parlour_assistant_replies_total", "Assistant replies and stateless completions",
            ["finish_reason", "path"], registry=r,
        )
        self.replies_running = Gauge(
            "parlour_replies_running", "Replies running on this node", registry=r
        )
        self.replies_pending = Gauge(
            "parlour_replies_pending", "Room replies admitted (waiting or running)", registry=r
        )
        self.admissions_refused = Counter(
            "parlour_admissions_refused_total", "Replies refused by the admission gate",
            ["path", "code"], registry=r,
        )
        self.ttft = Histogram(
            "parlour_time_to_first_token_seconds", "Time to first token", registry=r
        )
        self.tokens = Counter("parlour_tokens_total", "LLM tokens", ["kind"], registry=r)
        self.cost = Counter("parlour_cost_usd_total", "LLM cost in USD", registry=r)
        self.uploads = Counter("parlour_uploads_total", "Uploaded files", ["outcome"], registry=r)
        self.upload_bytes = Counter("parlour_upload_bytes_total", "Uploaded bytes", registry=r)
        self.speech = Counter(
            "parlour_speech_total", "Speech recognitions and syntheses", ["op", "outcome"],
            registry=r,
        )
        self.ingestion = Counter(
            "parlour_ingestion_total", "Document ingestions", ["outcome"], registry=r
        )
        self.extractions_running = Gauge(
            "parlour_extractions_running", "Files being read in the extraction sandbox",
            registry=r,
        )

    def event(self, name: str, outcome: str, seconds: float) -> None:
        """Count one handled event; `name` must be a known event (or UNKNOWN_EVENT).

        Label values come only from names the server defines: a label made of client
        input would let any client grow this registry (and /internal/metrics) forever.
        """
        key = (name, outcome)
        children = self._event_children.get(key)
        if children is None:  # labels() builds and checks its key each time: once is enough
            children = (self.events.labels(event=name, outcome=outcome),
                        self.event_latency.labels(event=name))
            self._event_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def error(self, code: str) -> None:
        """Count one error answered to a client."""
        self.errors.labels(code=code).inc()

    def request(self, method: str, status: int) -> None:
        """Count one REST request (unknown methods under `other`)."""
        label = method if method in HTTP_METHODS else "other"
        self.requests.labels(method=label, status=str(status)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
