"""The OpenAI-compatible API with the real `openai` client on SmolLM2: greedy text equals generate.py,
logprobs equal our log-softmax, errors arrive as the client's own exceptions; concurrent clients,
disconnects and bad requests leave the server answering."""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import ROOT, smollm2_gguf_path
from testkit.servers import running_server

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")


def post(url: str, path: str, body, *, stream_first: bool = False):
    """POST raw bytes (or JSON) with the standard library; (status, parsed JSON), or with `stream_first`
    read the first server-sent event and hang up."""
    import http.client
    from urllib.parse import urlsplit
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    if stream_first:
        line = r.readline()
        conn.close()
        return r.status, line
    out = r.read()
    conn.close()
    return r.status, json.loads(out)


@pytest.fixture(scope="module")
def server():
    with running_server("--model", str(smollm2_gguf_path())) as (url, proc):
        yield url, proc


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "v1", api_key="unused", max_retries=0, timeout=120)


def generate_py(*args) -> str:
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", str(smollm2_gguf_path()),
                          "--temperature", "0", *args], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr
    return res.stdout[:-1]   # its final newline


QUESTION = "What is the capital of France?"


def test_models_lists_the_model(client):
    assert [m.id for m in client.models.list().data] == [smollm2_gguf_path().name]


def test_chat_equals_generate_py_streamed_and_not(client):
    expected = generate_py("--chat", "--prompt", QUESTION, "--max-new-tokens", "20")
    r = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": QUESTION}],
                                       temperature=0, max_tokens=20)
    assert r.choices[0].message.content == expected
    assert r.choices[0].finish_reason == ("stop" if r.usage.completion_tokens < 20 else "length")
    stream = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": QUESTION}],
                                            temperature=0, max_tokens=20, stream=True,
                                            stream_options={"include_usage": True})
    parts, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
    assert "".join(parts) == expected and finish == r.choices[0].finish_reason
    assert usage.prompt_tokens == r.usage.prompt_tokens and usage.completion_tokens == r.usage.completion_tokens


def test_completions_equal_generate_py(client):
    prompt = "Once upon a time"
    expected = generate_py("--prompt", prompt, "--max-new-tokens", "12")[len(prompt):]
    r = client.completions.create(model="smollm2", prompt=prompt, temperature=0, max_tokens=12)
    assert r.choices[0].text == expected and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 12
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="smollm2", prompt=prompt, temperature=0, max_tokens=12, stream=True) if c.choices)
    assert streamed == expected


@pytest.mark.oracle
def test_completions_take_token_ids(client, server):
    """A prompt of token ids (HF tokenizers' ids of the text) gives the text prompt's completion."""
    tokenizers = pytest.importorskip("tokenizers")
    from conftest import smollm2_tokenizer_json
    prompt = "Once upon a time"
    ids = tokenizers.Tokenizer.from_file(str(smollm2_tokenizer_json())).encode(prompt).ids
    expected = generate_py("--prompt", prompt, "--max-new-tokens", "12")[len(prompt):]
    for given in (ids, [ids]):
        r = client.completions.create(model="smollm2", prompt=given, temperature=0, max_tokens=12)
        assert r.choices[0].text == expected and r.usage.prompt_tokens == len(ids)
    for bad, word in (([], "1 to"), ([1, -1], "[1]"), ([10 ** 9], "token id"), ([1.5], "token id"),
                      ([True], "token id"), ([[1], [2]], "prompt")):
        status, reply = post(server[0], "/v1/completions", {"prompt": bad, "max_tokens": 1})
        assert status == 400 and word in reply["error"]["message"], (bad, reply)


def test_seed_repeats_and_stop_strings(client):
    ask = dict(model="smollm2", messages=[{"role": "user", "content": "Tell me a short story."}], temperature=1.0,
               max_tokens=16, seed=7)
    a, b = (client.chat.completions.create(**ask).choices[0].message.content for _ in range(2))
    assert a == b
    assert client.chat.completions.create(**ask, response_format={"type": "text"}).choices[0].message.content == a
    ask["seed"] = -1                      # any int64 is a seed (llama.cpp clients send -1)
    a, b = (client.chat.completions.create(**ask).choices[0].message.content for _ in range(2))
    assert a == b
    full = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": QUESTION}],
                                          temperature=0, max_tokens=20).choices[0].message.content
    cut = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": QUESTION}],
                                         temperature=0, max_tokens=20, stop=["France", "zzz"])
    assert cut.choices[0].message.content == full[:full.index("France")] and cut.choices[0].finish_reason == "stop"


def test_logprobs_equal_our_log_softmax(client):
    from model.formats.loader import load
    loaded = load(str(smollm2_gguf_path()))
    r = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": QUESTION}],
                                       temperature=0, max_tokens=5, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    ids = loaded.chat.encode(loaded.tokenizer, [{"role": "user", "content": QUESTION}])
    model = loaded.model
    model.new_cache(128)
    logits = model.forward(ids)
    for entry in content:
        z = logits.astype(np.float64)
        logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
        token = int(np.argmax(logp))
        assert abs(entry.logprob - logp[token]) < 1e-5
        assert [round(t.logprob, 5) for t in entry.top_logprobs] == [round(v, 5) for v in np.sort(logp)[::-1][:3]]
        logits = model.forward([token])


def test_errors_are_the_clients_own_exceptions(client):
    msg = [{"role": "user", "content": "hi"}]
    for kwargs in (dict(n=2), dict(tools=[{"type": "function", "function": {"name": "f"}}]), dict(logit_bias={"1": 5}),
                   dict(max_tokens=-1), dict(max_tokens=10 ** 9), dict(temperature=-1),
                   dict(response_format={"type": "json_object"})):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="smollm2", messages=msg, **kwargs)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="smollm2", messages=[{"role": "wizard", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="smollm2", messages=[])


BAD = [
    (b"{oops", "JSON"), (b'"text"', "object"), (b"{}", "messages"), (b'{"messages": []}', "messages"),
    (b'{"messages": "hi"}', "messages"), (b'{"messages": [{"role": "user"}]}', "content"),
    (b'{"messages": [{"role": "robot", "content": "x"}]}', "role"),
    (b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "temperature"),
    (b'{"messages": [{"role": "user", "content": "x"}], "temperature": Infinity}', "temperature"),
    (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}', "max_tokens"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stop": [1]}', "stop"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
    (json.dumps({"messages": [{"role": "user", "content": "a " * 9000}]}).encode(), "context"),
    (b'{"messages": [{"role": "user", "content": "' + b"x" * (2 << 20) + b'"}]}', "larger"),
]


@pytest.mark.parametrize("body,word", BAD)
def test_bad_requests_get_4xx_and_the_next_is_answered(server, body, word):
    url = server[0]
    status, reply = post(url, "/v1/chat/completions", body)
    assert 400 <= status < 500, reply
    error = reply["error"]
    assert word in error["message"] and "\n" not in error["message"] and error["type"] == "invalid_request_error"
    assert post(url, "/v1/completions", {"prompt": "Hi", "max_tokens": 1, "temperature": 0})[0] == 200


def ask(url, prompt, max_tokens=8):
    status, reply = post(url, "/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}],
                                                       "temperature": 0, "max_tokens": max_tokens})
    assert status == 200, reply
    return reply["choices"][0]["message"]["content"]


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_eight_concurrent_clients_each_get_their_own_answer(server):
    url = server[0]
    prompts = [f"Name one thing about the number {n}." for n in range(8)]
    alone = [ask(url, p) for p in prompts]
    together = [None] * 8
    threads = [threading.Thread(target=lambda k=k: together.__setitem__(k, ask(url, prompts[k]))) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_disconnects_mid_stream_leave_the_server_answering(server):
    url, proc = server
    body = {"messages": [{"role": "user", "content": "Count from one to fifty."}], "temperature": 0,
            "max_tokens": 6, "stream": True}
    for _ in range(3):   # warm up what the first requests allocate
        ask(url, "Hi", 2)
    before = rss_kb(proc.pid)
    for k in range(100):
        if k % 3 == 0:
            status, first = post(url, "/v1/chat/completions", body, stream_first=True)   # then hang up
            assert status == 200 and first.startswith(b"data: ")
        else:
            assert post(url, "/v1/chat/completions", {**body, "stream": False, "max_tokens": 3})[0] == 200
    assert ask(url, QUESTION, 20) == ask(url, QUESTION, 20)
    grown = rss_kb(proc.pid) - before
    assert grown < 50_000, f"RSS grew {grown} KB over 100 requests"


def test_api_key_is_required_when_set():
    with running_server("--model", str(smollm2_gguf_path()), "--api-key", "s3cret") as (url, _):
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "v1", api_key="wrong", max_retries=0).models.list()
        ok = openai.OpenAI(base_url=url + "v1", api_key="s3cret", max_retries=0)
        assert ok.models.list().data
        import urllib.request
        with urllib.request.urlopen(url + "api/info", timeout=30) as r:   # the page's routes stay open on loopback
            assert r.status == 200


def test_readme_serve_commands_run():
    """README's serve section: its serve.py command (on a free port), its curl lines and its Python snippet."""
    import re
    import shlex
    import shutil
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Look inside, in the browser")[1].split("\n## ")[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    start = shlex.split(blocks[0].strip().split("&&")[-1])
    assert start[:2] == [".venv/bin/python", "scripts/serve.py"]
    with running_server(*start[2:]) as (url, _):
        port = url.rstrip("/").rsplit(":", 1)[1]
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        for line in next(b for b in blocks if b.lstrip().startswith("curl")).strip().splitlines():
            words = [w.replace("127.0.0.1:8000", "127.0.0.1:" + port) for w in shlex.split(line)]
            res = subprocess.run(words, capture_output=True, text=True, timeout=120)
            assert res.returncode == 0 and "error" not in res.stdout and res.stdout, (line, res.stdout, res.stderr)
        code = re.findall(r"```python\n(.*?)```", section, re.S)[0].replace("127.0.0.1:8000", "127.0.0.1:" + port)
        import contextlib
        import io
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README serve snippet", "exec"), {})
        assert out.getvalue().startswith("The capital of France is Paris.")


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_hangs_up_stops_its_generation(server, stream):
    """A long request whose client hangs up after a second, then a short one: the short one is answered
    at once, because the hang-up stopped the first generation (streaming or not)."""
    import socket
    from urllib.parse import urlsplit
    url, _ = server
    u = urlsplit(url)
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 2000, "temperature": 0, "stream": stream}).encode()
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: " + f"{u.hostname}:{u.port}".encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(1.0)
    s.close()                                    # hang up mid-generation (2000 tokens take about a minute)
    start = time.monotonic()
    status, reply = post(url, "/v1/completions", {"prompt": "Hello", "max_tokens": 2, "temperature": 0})
    waited = time.monotonic() - start
    assert status == 200 and reply["usage"]["completion_tokens"] == 2
    assert waited < 15, f"the next request waited {waited:.1f} s behind a generation nobody reads"


def test_errors_are_openai_error_objects(client, server):
    """models.retrieve works; unknown models, routes and methods get OpenAI's error object; a lone
    surrogate and max_tokens 0 get a 400 in words (issue 26)."""
    import urllib.error
    import urllib.request
    name = smollm2_gguf_path().name
    assert client.models.retrieve(name).id == name
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    url, _ = server
    for method, path, status in [("GET", "v1/nothing", 404), ("GET", "v1/chat/completions", 405)]:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(url + path, method=method))
        body = json.loads(e.value.read())
        assert e.value.code == status and set(body["error"]) >= {"message", "type", "param", "code"}
    status, reply = post(url, "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi \\ud800"}]}')
    assert status == 400 and "lone surrogate" in reply["error"]["message"]
    status, reply = post(url, "/v1/completions", {"prompt": "hi", "max_tokens": 0})
    assert status == 400 and "'max_tokens' must be >= 1" in reply["error"]["message"]
