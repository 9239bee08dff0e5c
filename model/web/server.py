"""The page's server: static files from static/ only, and short JSON routes that validate, then call
the library. `create_app` builds it (Starlette); `serve` runs it on 127.0.0.1 with uvicorn.

  GET  /                      the page (static/index.html); /?prompt=TEXT opens with TEXT analysed
  GET  /static/NAME           its script and styles
  GET  /api/info              the model, its shapes, the tokenizers to compare, the training log's presence
  POST /api/tokens            {text, chat, system}: the prompt's tokens (fast: the first panel)
  POST /api/analyze           {text, chat, system, max_new_tokens, temperature, top_k, top_p, seed}
  GET  /api/attention         ?id=&query=   every layer's and head's attention row from one position
  GET  /api/attention_layer   ?id=&layer=   one layer's attention, every query over every key [H, T, T]
  GET  /api/lens              ?id=&position=   the logit lens there
  POST /api/choice            {context, endings}: each ending's per-token log-probabilities (evaluation)
  GET  /api/eval_item         ?index=   item k of the HellaSwag file given to serve.py --hellaswag
  POST /api/merges            {text, tokenizer}: the merges replayed
  POST /api/compare           {text}: the same text through every tokenizer
  GET  /api/training          log.jsonl of a folder the trainer wrote
  /v1/...                     the OpenAI-compatible API (openai_api.py)
"""
import json
import secrets
from collections import OrderedDict
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from bpe.trace import boundaries, describe_tokens, merge_trace
from ..page_data import MAX_ANALYSED, Request, analyze, architecture, shapes
from .http import HostCheck, HttpError, ModelQueue, error_response, field, internal_error, query_int, read_body

STATIC = (Path(__file__).parent / "static").resolve()
KEPT_ANALYSES = 8          # analyses kept for their detail routes (each holds a residual stream; the newest
                           # also its attention probabilities, up to model/lens.py KEPT_PROBS)
MAX_TEXT = 20000           # characters of a prompt or a text to compare
MAX_MERGE_TEXT = 200       # characters of a merge replay (it rescans every pair at every step)
MAX_NEW = 256


class State:
    """What the routes share: the loaded model, the other tokenizers, the analyses kept."""

    def __init__(self, loaded, tokenizers: list, folder: Path | None, api_key: str | None, body_seconds: float,
                 model_id: str | None = None, eval_items: list | None = None, report: dict | None = None):
        self.loaded, self.folder, self.api_key, self.body_seconds = loaded, folder, api_key, body_seconds
        self.model_id = model_id   # what /v1/models calls the model (`smollm2`), else its file's name
        self.tokenizers = [("model", loaded.tokenizer)] + list(tokenizers)
        self.analyses: OrderedDict = OrderedDict()
        self.queue = ModelQueue()
        self.eval_items = eval_items or []   # HellaSwag items the evaluation panel steps through (serve.py --hellaswag)
        self.report = report                 # a report card (evaluate.py --report's JSON; serve.py --report)


def route(fn):
    """Turn HttpError into a one-line JSON error."""
    async def wrapped(request):
        try:
            return await fn(request, request.app.state.s)
        except HttpError as e:
            return error_response(e)
        except Exception as e:  # noqa: BLE001 - a bug must not take the server down or leak a traceback
            return error_response(internal_error(request.url.path, e))
    return wrapped


def prompt_ids(s: State, data: dict) -> tuple[list[int], str]:
    """The prompt's ids (raw, or through the model's chat template) and the text that was tokenized."""
    text = field(data, "text", str, required=True)
    if len(text) > MAX_TEXT:
        raise HttpError(400, f"'text' has {len(text)} characters; at most {MAX_TEXT}")
    if not text.strip():
        raise HttpError(400, "'text' is empty")
    tok, loaded = s.loaded.tokenizer, s.loaded
    if field(data, "chat", bool, False):
        system = field(data, "system", str, "")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        try:
            shown = loaded.chat.render(messages)
        except ValueError as e:
            raise HttpError(400, str(e)) from None   # the message names the template
        ids = loaded.chat.tokenize(tok, shown, loaded.chat.content_spans(messages, shown))
    else:
        ids, shown = tok.encode(text, bos=tok.add_bos), text
    context = loaded.model.cfg.max_position_embeddings
    if len(ids) >= context:
        raise HttpError(400, f"the prompt has {len(ids)} tokens; the context holds {context} (with one new token)")
    return ids, shown


@route
async def tokens(request, s: State):
    ids, shown = prompt_ids(s, await read_body(request))
    return JSONResponse({"tokens": describe_tokens(s.loaded.tokenizer, ids), "rendered": shown,
                         "made_by": "bpe: tok.encode (or model/chat.py ChatFormat.encode) -> ids [T]"})


@route
async def analyze_route(request, s: State):
    data = await read_body(request)
    ids, shown = prompt_ids(s, data)
    req = Request(ids, max_new_tokens=field(data, "max_new_tokens", int, 32, low=0, high=MAX_NEW),
                  temperature=field(data, "temperature", float, 0.0, low=0, high=100),
                  top_k=field(data, "top_k", int, 50, low=0, high=1 << 20),
                  top_p=field(data, "top_p", float, 1.0, low=1e-6, high=1),
                  seed=field(data, "seed", int, 0, low=0, high=2**63 - 1),
                  show=field(data, "show", int, 10, low=1, high=50),
                  speculate=field(data, "speculate", bool, False))
    async with s.queue.turn():
        try:
            result = await s.queue.run(analyze, s.loaded, req)
            summary = await s.queue.run(result.summary)
        except ValueError as e:
            raise HttpError(400, str(e)) from None
    key = secrets.token_hex(8)
    for older in s.analyses.values():     # only the newest keeps its attention (up to KEPT_PROBS); older
        older.trace.probs = None           # ones recompute a layer's when asked (model/lens.py)
    s.analyses[key] = result
    while len(s.analyses) > KEPT_ANALYSES:
        s.analyses.popitem(last=False)
    return JSONResponse({"id": key, "rendered": shown, **summary})


def kept(request, s: State):
    key = request.query_params.get("id", "")
    if key not in s.analyses:
        raise HttpError(404, "no such analysis (it may have been dropped: analyse the prompt again)")
    return s.analyses[key]


async def detail(request, s: State, param: str, compute, made_by: str):
    """One detail of a kept analysis at a position (or layer) given by `param`, computed on the model's thread."""
    a = kept(request, s)
    last = s.loaded.model.cfg.num_hidden_layers - 1 if param == "layer" else len(a.trace.ids) - 1
    position = query_int(request, param, 0, last)
    async with s.queue.turn():
        value = await s.queue.run(compute, a, position)
    return {param: position, "value": value, "made_by": made_by}


@route
async def attention_route(request, s: State):
    d = await detail(request, s, "query", lambda a, q: a.attention_from(q),
                     "model/lens.py attention_rows -> [L, H, query+1]")
    return JSONResponse({"query": d["query"], "rows": d["value"], "made_by": d["made_by"]})


@route
async def attention_layer_route(request, s: State):
    d = await detail(request, s, "layer", lambda a, l: a.attention_layer(l),
                     "model/lens.py attention_matrix (the block's attention_probs) -> [H, T, T]")
    return JSONResponse({"layer": d["layer"], "probs": d["value"], "made_by": d["made_by"]})


@route
async def lens_route(request, s: State):
    d = await detail(request, s, "position", lambda a, p: a.lens(p),
                     "model/lens.py logit_lens: rms_norm(x_l) @ W_head^T -> [L+1, V], top 5")
    return JSONResponse({"position": d["position"], "layers": d["value"], "made_by": d["made_by"]})


@route
async def choice_route(request, s: State):
    """One multiple-choice item scored as evaluate.py scores it: per ending, its tokens' log-probabilities."""
    from ..evaluation.choices import score_item
    from ..evaluation.datasets import Item
    data = await read_body(request)
    context = field(data, "context", str, required=True)
    endings = data.get("endings")
    if not isinstance(endings, list) or not 2 <= len(endings) <= 8 or not all(isinstance(e, str) and e.strip()
                                                                          for e in endings):
        raise HttpError(400, "'endings' must be a list of 2 to 8 non-empty strings")
    if not context.strip() or len(context) + sum(map(len, endings)) > MAX_TEXT:
        raise HttpError(400, f"'context' must be non-empty text, the item at most {MAX_TEXT} characters")
    label = field(data, "label", int, -1, low=-1, high=len(endings) - 1)
    tok = s.loaded.tokenizer
    async with s.queue.turn():
        try:
            scored = await s.queue.run(score_item, s.loaded.model, tok, Item(context, tuple(endings), label), 0)
        except ValueError as e:
            raise HttpError(400, str(e).removeprefix("item 0: ")) from None
    return JSONResponse({"label": label, "pred": scored.pred, "pred_norm": scored.pred_norm,
                         "logprob_sum": scored.logprob_sum, "logprob_mean": scored.logprob_mean,
                         "endings": [{"tokens": describe_tokens(tok, ids), "logprobs": lps}
                                     for ids, lps in zip(scored.tokens, scored.token_logprobs)],
                         "made_by": "model/evaluation/choices.py score_item (the endings in one packed forward)"})


@route
async def eval_item_route(request, s: State):
    if not s.eval_items:
        raise HttpError(404, "no items: start serve.py with --hellaswag FILE")
    k = query_int(request, "index", 0, len(s.eval_items) - 1)
    item = s.eval_items[k]
    return JSONResponse({"index": k, "count": len(s.eval_items), "context": item.context,
                         "endings": list(item.choices), "label": item.label,
                         "made_by": "model/evaluation/datasets.py read_hellaswag"})


@route
async def merges_route(request, s: State):
    data = await read_body(request)
    text = field(data, "text", str, required=True)
    if not 0 < len(text) <= MAX_MERGE_TEXT:
        raise HttpError(400, f"'text' must have 1 to {MAX_MERGE_TEXT} characters")
    k = field(data, "tokenizer", int, 0, low=0, high=len(s.tokenizers) - 1)
    name, tok = s.tokenizers[k]
    trace = merge_trace(tok, text)
    for chunk in trace["chunks"]:
        chunk["tokens"] = describe_tokens(tok, chunk["ids"])
    return JSONResponse({"tokenizer": name, **trace, "made_by": "bpe/trace.py merge_trace"})


@route
async def compare_route(request, s: State):
    data = await read_body(request)
    text = field(data, "text", str, required=True)
    if len(text) > MAX_TEXT:
        raise HttpError(400, f"'text' has {len(text)} characters; at most {MAX_TEXT}")
    out = []
    for name, tok in s.tokenizers:
        ids = tok.encode(text)
        out.append({"name": name, "count": len(ids), "tokens": describe_tokens(tok, ids), "ends": boundaries(tok, ids)})
    return JSONResponse({"tokenizers": out, "made_by": "bpe: tok.encode for each tokenizer"})


@route
async def info(request, s: State):
    loaded = s.loaded
    return JSONResponse({"model": loaded.source, "shapes": shapes(loaded.model.cfg),
                         "architecture": architecture(loaded.model.cfg),
                         "context": loaded.model.cfg.max_position_embeddings,
                         "tokenizers": [name for name, _ in s.tokenizers], "max_analysed": MAX_ANALYSED,
                         "eval_items": len(s.eval_items), "tuned_from": tuned_from(s.folder), "report": s.report,
                         "training": s.folder is not None and (s.folder / "log.jsonl").is_file()})


def tuned_from(folder: Path | None) -> dict | None:
    """For a folder the trainer tuned (--sft or --dpo from --init): what it started from, and how."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (TypeError, OSError, ValueError):
        return None
    if not isinstance(state, dict) or "init" not in state or not ("sft" in state or "dpo" in state):
        return None
    how = ("DPO" if "dpo" in state else "SFT") + (" with LoRA" if "lora" in state else "")
    return {"init": str(state["init"]), "how": how}


@route
async def training(request, s: State):
    path = s.folder / "log.jsonl" if s.folder is not None else None
    if path is None or not path.is_file():
        raise HttpError(404, "this model has no training log (log.jsonl)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return JSONResponse({"rows": rows[-2000:]})


async def index(request):
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def static(request):
    """A file of static/ only: no '..', no absolute paths, nothing a symlink points to outside it."""
    name = request.path_params["name"]
    path = (STATIC / name).resolve()
    if ".." in Path(name).parts or not path.is_relative_to(STATIC) or not path.is_file():
        return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
    return FileResponse(path)


async def not_found(request, exc: HTTPException):
    """404 / 405: OpenAI's error object under /v1/ (what its clients parse), {"error": "..."} for the page."""
    what = "no route" if exc.status_code == 404 else "this route does not take"
    e = HttpError(exc.status_code, f"{what} {request.method} {request.url.path}")
    if request.url.path.startswith("/v1/"):
        from .openai_api import openai_error
        return openai_error(e)
    return error_response(e)


def create_app(loaded, *, tokenizers=(), folder=None, api_key=None, hosts=("127.0.0.1:8000",), body_seconds=10.0,
               model_id=None, eval_items=None, report=None):
    """The ASGI app: the page, its routes and the OpenAI-compatible API, behind the Host check."""
    from .openai_api import routes as api_routes
    routes = [Route("/", index), Route("/static/{name:path}", static),
              Route("/api/info", info), Route("/api/tokens", tokens, methods=["POST"]),
              Route("/api/analyze", analyze_route, methods=["POST"]),
              Route("/api/attention", attention_route), Route("/api/lens", lens_route),
              Route("/api/attention_layer", attention_layer_route), Route("/api/choice", choice_route, methods=["POST"]),
              Route("/api/eval_item", eval_item_route),
              Route("/api/merges", merges_route, methods=["POST"]),
              Route("/api/compare", compare_route, methods=["POST"]),
              Route("/api/training", training)] + api_routes()
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.s = State(loaded, tokenizers, Path(folder) if folder else None, api_key, body_seconds, model_id,
                        eval_items, report)
    return HostCheck(app, set(hosts))


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host headers this server answers to: its address (and localhost's names when on loopback)."""
    names = {host}
    if host in ("127.0.0.1", "localhost", "::1"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return {f"{n}:{port}" for n in names} | ({"[::1]:%d" % port} if host == "::1" else set())


def serve(app_factory, host: str, port: int, *, on_ready=None) -> None:
    """Bind host:port (0 = a free port), build the app for that address, and serve until Ctrl-C."""
    import socket
    import uvicorn
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)          # connections wait in the backlog from now on, before uvicorn starts accepting
    port = sock.getsockname()[1]
    app = app_factory(allowed_hosts(host, port))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, timeout_keep_alive=5,
                            h11_max_incomplete_event_size=64 * 1024)
    server = uvicorn.Server(config)
    if on_ready:
        on_ready(host, port)
    server.run(sockets=[sock])


