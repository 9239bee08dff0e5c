"""OpenAI's API on the page's server: /v1/models, /v1/chat/completions, /v1/completions, streamed
(server-sent events) or not, through the model's own chat template, served one request at a time.

Supported: temperature, top_p, top_k (an extension, as llama.cpp's), max_tokens (max_completion_tokens),
seed, stop (a string or up to 4), n = 1, response_format text, stream (with stream_options.include_usage), logprobs and
top_logprobs (chat) / logprobs N (completions): the model's log-softmax; a completion's prompt as text
or as token ids. Anything else is refused by
name in OpenAI's error shape, never silently ignored. Defaults: the model's generation_config.json,
else OpenAI's (temperature 1, top_p 1); a random seed unless one is given.
"""
import hmac
import json
import secrets
import time

import numpy as np
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bpe.trace import piece_bytes
from ..generate import generate
from ..session import stop_ids
from .http import HttpError, field, internal_error, read_body

CHAT_FIELDS = {"model", "messages", "temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "seed",
               "stop", "n", "stream", "stream_options", "logprobs", "top_logprobs", "user", "presence_penalty",
               "frequency_penalty", "response_format"}
COMPLETION_FIELDS = (CHAT_FIELDS - {"messages", "top_logprobs", "max_completion_tokens"}) | {"prompt", "echo"}
ROLES = ("system", "user", "assistant", "developer")
ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "not_found_error",
               408: "invalid_request_error", 413: "invalid_request_error", 500: "server_error", 503: "server_error"}


def openai_error(e: HttpError) -> JSONResponse:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    code = {401: "invalid_api_key", 503: "overloaded"}.get(e.status)
    return JSONResponse({"error": {"message": e.message, "type": ERROR_TYPES.get(e.status, "invalid_request_error"),
                                   "param": e.param, "code": code}}, status_code=e.status, headers=e.headers)


def api(fn):
    """The API key check, then the route; HttpError in OpenAI's shape."""
    async def wrapped(request):
        s = request.app.state.s
        try:
            if s.api_key is not None:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {s.api_key}".encode()):
                    raise HttpError(401, "a valid API key is required: Authorization: Bearer KEY")
            return await fn(request, s)
        except HttpError as e:
            return openai_error(e)
        except Exception as e:  # noqa: BLE001
            return openai_error(internal_error(request.url.path, e))
    return wrapped


def model_name(s) -> str:
    """The id /v1/models lists: the name the server was started with (`smollm2`, `gemma3`), else the
    model file's or folder's name."""
    return getattr(s, "model_id", None) or s.loaded.source.rstrip("/").split("/")[-1]


def model_card(s) -> dict:
    return {"id": model_name(s), "object": "model", "created": 0, "owned_by": "tinyllama-from-scratch"}


@api
async def models(request, s):
    return JSONResponse({"object": "list", "data": [model_card(s)]})


@api
async def model(request, s):
    """GET /v1/models/{id} (the openai client's models.retrieve): the one model, or a 404 naming it."""
    name = request.path_params["name"]
    if name != model_name(s):
        raise HttpError(404, f"no model {name!r}; this server serves {model_name(s)!r}", param="model")
    return JSONResponse(model_card(s))


def refuse_unknown(data: dict, known: set) -> None:
    """Options we do not support are refused by name."""
    for name in data:
        if name not in known:
            raise HttpError(400, f"'{name}' is not supported by this server", param=name)
    if field(data, "n", int, 1) != 1:
        raise HttpError(400, "'n' > 1 is not supported (one choice per request)", param="n")
    for name in ("presence_penalty", "frequency_penalty"):
        if field(data, name, float, 0.0) != 0.0:
            raise HttpError(400, f"'{name}' is not supported (only 0)", param=name)
    field(data, "model", str)
    field(data, "user", str)
    if field(data, "response_format", dict, {"type": "text"}) != {"type": "text"}:
        raise HttpError(400, "'response_format' must be {\"type\": \"text\"} (plain text is all this server writes)",
                        param="response_format")


def message_text(m, k: int) -> tuple[str, str]:
    """(role, content) of one message; content a string or a list of text parts."""
    if not isinstance(m, dict):
        raise HttpError(400, f"messages[{k}] must be an object", param="messages")
    role, content = m.get("role"), m.get("content")
    if role not in ROLES:
        raise HttpError(400, f"messages[{k}].role must be one of {', '.join(ROLES)}, got {json.dumps(role)[:30]}",
                        param="messages")
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise HttpError(400, f"messages[{k}].content: only text parts are supported", param="messages")
            parts.append(part["text"])
        content = "".join(parts)
    if not isinstance(content, str):
        raise HttpError(400, f"messages[{k}].content must be a string", param="messages")
    extra = set(m) - {"role", "content", "name"}
    if extra:
        raise HttpError(400, f"messages[{k}].{sorted(extra)[0]} is not supported", param="messages")
    return ("system" if role == "developer" else role), content


def sampling(s, data: dict, prompt_len: int) -> dict:
    """temperature, top_p, top_k, max_tokens, seed and stop strings, checked."""
    defaults = s.loaded.defaults
    context = s.loaded.model.cfg.max_position_embeddings
    room = context - prompt_len
    if room < 1:
        raise HttpError(400, f"the prompt has {prompt_len} tokens; the context holds {context} (with one new token)",
                        param="messages" if "messages" in data else "prompt")
    max_tokens = field(data, "max_completion_tokens", int, None, low=1) or field(data, "max_tokens", int, None, low=1)
    if max_tokens is not None and max_tokens > context:
        raise HttpError(400, f"'max_tokens' {max_tokens} is more than the context of {context}", param="max_tokens")
    stop = data.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(x, str) and x for x in stops):
        raise HttpError(400, "'stop' must be a non-empty string or a list of up to 4", param="stop")
    return {"temperature": field(data, "temperature", float, float(defaults.get("temperature", 1.0)), low=0, high=2),
            "top_p": field(data, "top_p", float, float(defaults.get("top_p", 1.0)), low=1e-9, high=1),
            "top_k": field(data, "top_k", int, int(defaults.get("top_k", 0)), low=0),
            "max_tokens": min(max_tokens or room, room),
            "seed": field(data, "seed", int, None, low=-2**63, high=2**63 - 1),   # any int64 repeats
            "stops": stops}


class Completion:
    """One generation, stepped by the model's thread: text pieces, their logprobs, the finish reason."""

    def __init__(self, s, ids: list[int], opts: dict, *, continuation: bool, top: int | None):
        loaded = s.loaded
        self.model, self.tok = loaded.model, loaded.tokenizer
        self.ids, self.opts, self.top = ids, opts, top
        self.stop_tokens = stop_ids(self.model, self.tok)
        self.decoder = self.tok.stream_decoder()
        if continuation:
            for i in ids:
                self.decoder.feed(i)
        self.held, self.finish, self.new, self.by_string = "", None, [], False
        self.pending_logprobs = []
        seed = opts["seed"] % 2**64 if opts["seed"] is not None else secrets.randbits(63)
        self.steps = generate(self.model, ids, max_new_tokens=opts["max_tokens"], rng=np.random.default_rng(seed),
                              temperature=opts["temperature"], top_k=opts["top_k"], top_p=opts["top_p"],
                              stop_ids=self.stop_tokens, limit=loaded.sample_limit,
                              observe=self._observe if top is not None else None)

    def _observe(self, logits, token):
        z = logits.astype(np.float64)
        logp = z - (z.max() + np.log(np.exp(z - z.max()).sum()))                 # log-softmax [V]
        best = np.argpartition(-logp, self.top)[:self.top] if self.top else np.array([], int)
        best = best[np.argsort(-logp[best])]
        self.pending_logprobs.append((int(token), float(logp[token]), [(int(i), float(logp[i])) for i in best]))

    def step(self) -> str | None:
        """The next piece of text (maybe ""), or None when finished (then self.finish is set)."""
        if self.finish is not None:
            return None
        token = next(self.steps, None)
        if token is None:
            self.finish = "length"
            return self._end()
        self.new.append(token)
        if token in self.stop_tokens:
            self.finish = "stop"
            return self._end()
        text = "" if self.tok.is_control(token) else self.decoder.feed(token)
        out = self._stop_strings(text)
        if self.finish is None and len(self.new) >= self.opts["max_tokens"]:
            self.finish = "length"
            out += self._end()
        return out

    def _stop_strings(self, text: str) -> str:
        """Hold back what could begin a stop string; end at the first one found (it is not returned)."""
        self.held += text
        stops = self.opts["stops"]
        if not stops:
            out, self.held = self.held, ""
            return out
        hits = [self.held.find(x) for x in stops if x in self.held]
        if hits:
            self.finish, self.by_string = "stop", True
            out, self.held = self.held[:min(hits)], ""
            return out
        keep = max(len(x) for x in stops) - 1
        cut = max(len(self.held) - keep, 0)
        out, self.held = self.held[:cut], self.held[cut:]
        return out

    def _end(self) -> str:
        """The decoder's last held bytes, and the text held back for stop strings that never came."""
        out = self._stop_strings(self.decoder.flush())
        if not self.by_string:
            out += self.held
        self.held = ""
        return out

    def usage(self) -> dict:
        return {"prompt_tokens": len(self.ids), "completion_tokens": len(self.new),
                "total_tokens": len(self.ids) + len(self.new)}

    def take_logprobs(self, chat: bool):
        """The logprobs of the tokens stepped since the last call, in the chat or the completions form."""
        got, self.pending_logprobs = self.pending_logprobs, []
        piece = (lambda i: piece_bytes(self.tok, i).decode("utf-8", "replace"))
        if chat:
            return [{"token": piece(t), "logprob": lp, "bytes": list(piece_bytes(self.tok, t)),
                     "top_logprobs": [{"token": piece(i), "logprob": l, "bytes": list(piece_bytes(self.tok, i))}
                                      for i, l in top]} for t, lp, top in got]
        return {"tokens": [piece(t) for t, _, _ in got], "token_logprobs": [lp for _, lp, _ in got],
                "top_logprobs": [{piece(i): l for i, l in top} for _, _, top in got]}


async def respond(request, s, data: dict, ids: list[int], *, chat: bool):
    """Generate for a checked request: one JSON answer, or a stream of server-sent events."""
    opts = sampling(s, data, len(ids))
    stream = field(data, "stream", bool, False)
    include_usage = False
    if data.get("stream_options") is not None:
        so = data["stream_options"]
        if not stream or not isinstance(so, dict) or set(so) - {"include_usage"}:
            raise HttpError(400, "'stream_options' needs stream = true and takes only include_usage",
                            param="stream_options")
        include_usage = field(so, "include_usage", bool, False)
    if chat:
        wants = field(data, "logprobs", bool, False)
        top = field(data, "top_logprobs", int, 0, low=0, high=20)
        if data.get("top_logprobs") is not None and not wants:
            raise HttpError(400, "'top_logprobs' needs logprobs = true", param="top_logprobs")
        top = top if wants else None
    else:
        top = field(data, "logprobs", int, None, low=0, high=5)
    kind = "chat.completion" if chat else "text_completion"
    rid, created, name = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12), int(time.time()), model_name(s)

    def choice(text, finish, logprobs):
        if chat:
            return {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs":
                    {"content": logprobs} if logprobs is not None else None, "finish_reason": finish}
        return {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}

    if not stream:
        async with s.queue.turn():
            run = await s.queue.run(Completion, s, ids, opts, continuation=not chat, top=top)
            parts = []
            while (piece := await s.queue.run(run.step)) is not None:
                parts.append(piece)
                if await request.is_disconnected():   # the client hung up: stop, and free the model
                    return Response(status_code=499)
            text = "".join(parts)
        logprobs = run.take_logprobs(chat) if top is not None else None
        return JSONResponse({"id": rid, "object": kind, "created": created, "model": name,
                             "choices": [choice(text, run.finish, logprobs)], "usage": run.usage()})

    turn = s.queue.turn()
    await turn.__aenter__()   # queued (or 503) before the stream starts, so errors are still plain answers

    async def events():
        def chunk(delta_text, finish, logprobs, first=False):
            if chat:
                delta = ({"role": "assistant", "content": ""} if first else
                         {"content": delta_text} if delta_text is not None else {})
                c = {"index": 0, "delta": delta, "logprobs": {"content": logprobs} if logprobs else None,
                     "finish_reason": finish}
            else:
                c = {"index": 0, "text": delta_text or "", "logprobs": logprobs, "finish_reason": finish}
            body = {"id": rid, "object": kind + ".chunk" if chat else kind, "created": created, "model": name,
                    "choices": [c]}
            if include_usage:
                body["usage"] = None
            return f"data: {json.dumps(body)}\n\n"
        try:
            run = await s.queue.run(Completion, s, ids, opts, continuation=not chat, top=top)
            if chat:
                yield chunk(None, None, None, first=True)
            while True:
                piece = await s.queue.run(run.step)
                logprobs = run.take_logprobs(chat) if top is not None else None
                if piece is None:
                    break
                if piece or logprobs:
                    yield chunk(piece, None, logprobs)
            yield chunk(None if chat else "", run.finish, None)
            if include_usage:
                yield f"data: {json.dumps({'id': rid, 'object': kind + '.chunk' if chat else kind, 'created': created, 'model': name, 'choices': [], 'usage': run.usage()})}\n\n"
            yield "data: [DONE]\n\n"
        finally:                       # also when the client went away: the next request gets the model
            await turn.__aexit__(None, None, None)
    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@api
async def chat_completions(request, s):
    data = await read_body(request)
    refuse_unknown(data, CHAT_FIELDS)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HttpError(400, "'messages' must be a non-empty list", param="messages")
    turns = [dict(zip(("role", "content"), message_text(m, k))) for k, m in enumerate(messages)]
    if sum(len(t["content"]) for t in turns) > 1 << 20:
        raise HttpError(400, "the messages are too long", param="messages")
    try:
        ids = s.loaded.chat.encode(s.loaded.tokenizer, turns)
    except ValueError as e:
        raise HttpError(400, str(e), param="messages") from None   # the message names the template
    return await respond(request, s, data, ids, chat=True)


@api
async def completions(request, s):
    data = await read_body(request)
    refuse_unknown(data, COMPLETION_FIELDS)
    if field(data, "echo", bool, False):
        raise HttpError(400, "'echo' is not supported", param="echo")
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]                               # one prompt in a list: one choice
    if isinstance(prompt, list):                         # token ids, as they are (no BOS added)
        vocab = min(s.loaded.model.cfg.vocab_size, s.loaded.tokenizer.vocab_size)
        return await respond(request, s, data, token_ids(prompt, vocab, s.loaded.model.cfg.max_position_embeddings),
                             chat=False)
    if not isinstance(prompt, str) or not prompt:
        raise HttpError(400, "'prompt' must be a non-empty string or a list of token ids", param="prompt")
    if len(prompt) > 1 << 20:
        raise HttpError(400, "'prompt' is too long", param="prompt")
    tok = s.loaded.tokenizer
    return await respond(request, s, data, tok.encode(prompt, bos=tok.add_bos), chat=False)


def token_ids(prompt: list, vocab: int, context: int) -> list[int]:
    """A prompt given as token ids: each an integer in 0..vocab-1, at most `context` of them."""
    if not prompt or len(prompt) > context:
        raise HttpError(400, f"'prompt' as token ids must hold 1 to {context} ids (one prompt per request)",
                        param="prompt")
    for i, t in enumerate(prompt):
        if not (isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab):
            raise HttpError(400, f"'prompt'[{i}] must be a token id in 0..{vocab - 1}, "
                                 f"got {json.dumps(t)[:30]}", param="prompt")
    return list(prompt)


def routes() -> list:
    """The /v1 routes."""
    return [Route("/v1/models", models), Route("/v1/models/{name:path}", model),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"])]
