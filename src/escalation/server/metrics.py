"""The service's Prometheus metrics, in a registry of its own (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Decisions, rejections, violations by kind, retries, reloads by result, request and store latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter("escalation_decisions", "Events accepted and decided (decision records written)", registry=r)
        self.rejections = Counter("escalation_rejections", "Records rejected (rejected records written)", registry=r)
        self.violations = Counter("escalation_violations", "Violations in decisions, by kind", ["kind"], registry=r)
        self.retries = Counter("escalation_retries", "Retried events answered from their first decision", registry=r)
        self.reloads = Counter("escalation_reloads", "Policy reloads, by result (ok, failed)", ["result"], registry=r)
        self.requests = Histogram(
            "escalation_request_seconds", "HTTP request latency, by method, route and status", ["method", "route", "status"], buckets=_LATENCY, registry=r
        )
        self.store_seconds = Histogram(
            "escalation_store_seconds", "Durability latency: audit_sync (fsync of the segment), state_commit", ["operation"], buckets=_LATENCY, registry=r
        )

    def text(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
