"""The HTTP face of the service (interfaces.md §5), a FastAPI application: routes, bearer auth, limits, JSON errors.

Every error is JSON ``{error, reason}`` with a 4xx or 5xx status, never a traceback. Bodies
are read raw (the audit log keeps the event as it was sent): ``application/json`` is one
event, ``application/x-ndjson`` one a line; a body over the limit is refused with 413
before it is read whole, another content type with 415, a body that is not JSON with 400
(nothing is applied or logged). An event the replay would reject is logged and answered
422 with its `rejected` record.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import EscalationError, EventError
from ..version import __version__
from .service import Service, ServiceUnavailable

log = logging.getLogger("escalation.serve")

__all__ = ["ApiError", "create_app"]

_JSON = "application/json"
_NDJSON = "application/x-ndjson"


class ApiError(EscalationError):
    """An answer that is an error: its status, a short name and one sentence (an HTTP answer, never an exit)."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


def _error(status: int, error: str, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "reason": reason}, status_code=status, headers=headers)


def _raw_json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=_JSON)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 as soon as it passes ``limit`` bytes (before it is read whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"the body is {declared} bytes, more than the limit of {limit} bytes (--max-body-bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"the body is more than the limit of {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_blank(line: bytes) -> bool:
    return not line.strip(b" \t")


def _checked_json(line: bytes, where: str) -> bytes:
    """``line`` as one input line: valid JSON (else 400), its CR and LF (JSON whitespace there) written as spaces."""
    try:
        json.loads(line)
    except ValueError as err:  # not UTF-8, or not JSON
        detail = str(err).split(":")[0]
        raise ApiError(400, "malformed_json", f"{where} is not valid JSON ({detail}); nothing was applied") from None
    return line.replace(b"\r", b" ").replace(b"\n", b" ")


def event_lines(media: str, body: bytes) -> tuple[list[bytes], bool]:
    """The input lines of a POST /v1/events body, and whether it is a batch; ApiError when the body is not one."""
    if media == _JSON:
        body = body.strip(b" \t\r\n")  # JSON whitespace around the value: the input line is the value itself
        if not body:
            raise ApiError(400, "empty_body", "the body is empty: send one JSON event")
        return [_checked_json(body, "the body")], False
    if media == _NDJSON:
        lines = []
        for number, line in enumerate(body.split(b"\n"), 1):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not _is_blank(line):
                lines.append(_checked_json(line, f"line {number} of the body"))
        if not lines:
            raise ApiError(400, "empty_body", "the body holds no event: send one JSON event a line")
        return lines, True
    shown = media or "none"
    raise ApiError(415, "unsupported_media_type", f"the content type is {shown}: send {_JSON} (one event) or {_NDJSON} (one a line)")


def create_app(service: Service, *, token: str | None = None, max_body_bytes: int = 1 << 20) -> FastAPI:
    """The ASGI application over ``service``; with ``token``, every /v1 route wants ``Authorization: Bearer <token>``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        service.start()
        yield
        await service.stop()

    app = FastAPI(
        title="escalation decision service",
        version=__version__,
        description="Events in, decisions out, every decision in a tamper-evident audit log (interfaces.md §5).",
        lifespan=lifespan,
    )
    app.state.service = service
    expected = None if token is None else token.encode("utf-8")

    def authorise(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode("utf-8"), expected):
            reason = "this route wants an `Authorization: Bearer <token>` header" if not given else "the bearer token is wrong"
            raise ApiError(401, "unauthorized", reason)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return _error(err.status, err.error, err.reason, headers)

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, err: ServiceUnavailable) -> JSONResponse:
        return _error(503, "unavailable", str(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        name = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        reason = f"there is no route {request.url.path}" if err.status_code == 404 else str(err.detail)
        return _error(err.status_code, name, reason)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", "; ".join(str(e.get("msg")) for e in err.errors()))

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"path": request.url.path})
        return _error(500, "internal_error", f"the service failed on this request ({type(err).__name__}); it is in the log")

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        service.metrics.requests.labels(request.method, path, str(response.status_code)).observe(time.perf_counter() - started)
        return response

    @app.post("/v1/events", summary="Apply one event (application/json) or several (application/x-ndjson)")
    async def post_events(request: Request) -> Response:
        authorise(request)
        media = _media_type(request)
        if media not in (_JSON, _NDJSON):
            event_lines(media, b"")  # 415 before the body is read
        lines, batch = event_lines(media, await _body(request, max_body_bytes))
        outcomes = await service.submit(lines)
        if batch:
            return _raw_json(b"[" + b",".join(o.line for o in outcomes) + b"]")
        return _raw_json(outcomes[0].line, outcomes[0].status)

    @app.get("/v1/conversations/{conversation}", summary="What the agent may do now in a conversation")
    async def get_conversation(request: Request, conversation: str, at: str | None = None) -> Response:
        authorise(request)
        try:
            answer = await service.permissions(conversation, at)
        except (EventError, ValueError) as err:  # TimeError is a ValueError
            raise ApiError(422, "bad_at", str(err)) from None
        if answer is None:
            raise ApiError(404, "unknown_conversation", f"conversation {conversation!r} has had no accepted event")
        return JSONResponse(answer.as_json())

    @app.get("/v1/customers/{customer}", summary="A customer's conversations (in binding order) and its history's events")
    async def get_customer(request: Request, customer: str) -> Response:
        authorise(request)
        answer = await service.customer(customer)
        if answer is None:
            raise ApiError(404, "unknown_customer", f"no conversation is bound to customer {customer!r}")
        return JSONResponse(answer.as_json())

    @app.post("/v1/policy/reload", summary="Load the policy file again (as SIGHUP does)")
    async def post_reload(request: Request) -> Response:
        authorise(request)
        status = await service.reload()
        if status.result != "ok":
            return _error(422, "reload_failed", f"the policy was not reloaded, the old one stays: {status.error}")
        return JSONResponse({"status": "ok", "policy": service.policy_json()})

    @app.get("/health", summary="Whether the policy is loaded and the state store answers")
    async def health() -> Response:
        ok, body = service.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(service.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
