"""What every route shares: one-line errors as JSON, bounded and timed request bodies, typed fields,
the Host check (DNS rebinding), and the one model's queue (one request at a time, in arrival order)."""
import asyncio
import json
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial

from starlette.responses import JSONResponse

MAX_BODY = 1 << 20        # bytes of a request body
BODY_SECONDS = 10.0       # a body must arrive within this (a slow client cannot hold a connection open)
MAX_WAITING = 16          # requests queued for the model before 503


class HttpError(Exception):
    """A request we refuse: status and a one-line reason (the OpenAI routes wrap it in their shape)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}


def error_response(e: HttpError) -> JSONResponse:
    """{"error": "..."} for the page's routes."""
    return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)


async def read_body(request) -> dict:
    """The request's JSON object: 413 past MAX_BODY, 408 when it is slower than BODY_SECONDS, 400 when not JSON."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise HttpError(413, f"the body is larger than {MAX_BODY} bytes")
    body = bytearray()

    async def collect():
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY:
                raise HttpError(413, f"the body is larger than {MAX_BODY} bytes")
    seconds = request.app.state.s.body_seconds
    try:
        await asyncio.wait_for(collect(), seconds)
    except asyncio.TimeoutError:
        raise HttpError(408, f"the request body did not arrive within {seconds:g} s") from None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise HttpError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the body must be a JSON object")
    try:                       # a lone surrogate ("\ud800") is valid JSON but not Unicode text
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise HttpError(400, f"the body holds a lone surrogate (U+{ord(e.object[e.start]):04X}): not Unicode "
                             "text") from None
    return data


def field(data: dict, name: str, kind, default=None, *, low=None, high=None, required: bool = False):
    """data[name] checked: its JSON type (int, float, str, bool, list), a range; 400 naming it otherwise."""
    if name not in data or data[name] is None:
        if required:
            raise HttpError(400, f"'{name}' is required", param=name)
        return default
    value = data[name]
    ok = (isinstance(value, bool) if kind is bool else
          isinstance(value, int) and not isinstance(value, bool) if kind is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else
          isinstance(value, kind))
    if not ok:
        raise HttpError(400, f"'{name}' must be {'a number' if kind is float else kind.__name__}, got {json.dumps(value)[:40]}",
                        param=name)
    if kind is float:
        if not math.isfinite(value):
            raise HttpError(400, f"'{name}' must be a finite number", param=name)
        value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if low is not None and high is not None else \
            f">= {low}" if low is not None else f"<= {high}"
        raise HttpError(400, f"'{name}' must be {bounds}, got {value}", param=name)
    return value


def query_int(request, name: str, low: int, high: int) -> int:
    """An integer query parameter in [low, high], or 400."""
    raw = request.query_params.get(name)
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise HttpError(400, f"query parameter '{name}' must be a non-negative integer")
    value = int(raw)
    if not low <= value <= high:
        raise HttpError(400, f"query parameter '{name}' must be in [{low}, {high}], got {value}")
    return value


class HostCheck:
    """ASGI middleware: refuse a request whose Host header is not an address this server answers to.

    A web page the user visits can point a DNS name at 127.0.0.1 (DNS rebinding, as ollama's
    CVE-2024-28224); its requests then carry that name as Host, and are refused here.
    """

    def __init__(self, app, allowed: set[str]):
        self.app, self.allowed = app, {h.lower() for h in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            if host not in self.allowed:
                response = JSONResponse({"error": f"Host {host[:60]!r} is not this server's address"}, status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ModelQueue:
    """The one model and its KV cache: work runs on one thread, one request at a time, in arrival order
    (asyncio.Lock wakes its waiters first come, first served); past MAX_WAITING, 503 with Retry-After."""

    def __init__(self, max_waiting: int = MAX_WAITING):
        self.lock = asyncio.Lock()
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self.waiting, self.max_waiting = 0, max_waiting

    @asynccontextmanager
    async def turn(self):
        """Hold the model for one request (a step already running when it is cancelled still finishes first:
        the one thread runs jobs in order)."""
        if self.waiting >= self.max_waiting:
            raise HttpError(503, f"the model is busy ({self.waiting} requests waiting); try again",
                            headers={"Retry-After": "1"})
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self.lock.release()

    async def run(self, fn, *args, **kwargs):
        """Run fn(*args, **kwargs) on the model's thread."""
        return await asyncio.get_running_loop().run_in_executor(self.thread, partial(fn, *args, **kwargs))


def internal_error(where: str, e: Exception) -> HttpError:
    """A bug of ours: one line in the server's log, a 500 with one line to the client."""
    print(f"error: {where}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    return HttpError(500, f"internal error in {where}: {type(e).__name__}")
