"""The fuzz harness for every model-file reader (scripts/fuzz.py runs it; tests/test_fuzz.py a few hundred cases).

For each format a small valid file is built here, then mutated: bits flipped, bytes overwritten,
truncated, chunks spliced, integers set to 0, 2^31, 2^32, 2^63, 2^64-1 or -1; JSON files also get
values of the wrong type, deleted and duplicated keys. Each case runs the reader in a forked child
under a memory limit (RLIMIT_AS) and a time limit. The outcome must be a clean load or one of the
project's error types; anything else (another exception, a signal, a time-out) is a finding.
"""
import json
import os
import random
import resource
import signal
import struct
import time
from pathlib import Path

ERROR_EXIT, OTHER_EXIT = 10, 20
SPECIAL_INTS = [0, 1, 0xFF, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63, 2**64 - 1]


def project_errors() -> tuple:
    """The error types a reader may raise for a bad file (each names the file and the problem)."""
    from bpe.model_file import ModelFileError
    from model.chat import ChatTemplateError
    from model.config import ConfigError
    from files.gguf import GGUFError
    from model.formats.hub import ModelNotFound
    from model.formats.ollama import OllamaError
    from model.weights import WeightsError
    return ModelFileError, ConfigError, WeightsError, GGUFError, OllamaError, ChatTemplateError, ModelNotFound


# --- seed files ---------------------------------------------------------------------------------
def build_seeds(folder: Path, fixtures: Path) -> dict:
    """{format: (file name, bytes, reader(path))}: one small valid file per format."""
    import numpy as np
    from bpe.bytes_trainer import GPT4_PATTERN, RegexWords, train_bytes
    from bpe.files import load_tokenizer
    from model.chat import ChatFormat
    from model.config import LlamaConfig
    from model.formats.loader import load, load_folder
    from model.weights import checkpoint_files, load_tensors, read_header, save_safetensors

    words = {}
    for line in ["the quick brown fox", "jumps over the lazy dog", "the end"] * 3:
        for w in RegexWords(GPT4_PATTERN)(line):
            words[w] = words.get(w, 0) + 1
    trained = train_bytes(words, 280, special_tokens=["<|end|>"])
    tiny = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(5, np.float32)}
    save_safetensors(folder / "seed.safetensors", tiny, "F32")
    ranks = "".join(f"{__import__('base64').b64encode(bytes([b])).decode()} {b}\n" for b in range(256))
    ranks += "IHQ= 256\naGU= 257\nIHRoZQ== 258\n"  # " t", "he", " the"

    def read_safetensors(path):
        load_tensors(path, header=read_header(path))

    def read_index(path):
        files, headers = checkpoint_files(path.parent)
        for file, header in headers.items():
            load_tensors(file, header=header)

    def read_template(path):
        ChatFormat(path.read_text(encoding="utf-8", errors="replace"), tokens={"eos_token": "</s>"}).render(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])

    def read_manifest(path):
        from model.formats import ollama
        os.environ["OLLAMA_MODELS"] = str(path.parents[4])  # manifests/registry.ollama.ai/library/tiny/latest
        ollama.resolve("ollama:tiny:latest")

    seeds = {
        "spm-model": ("tok512.model", (fixtures / "tok512.model").read_bytes(), load_tokenizer),
        "tokenizer-json": ("tokenizer.json", trained.to_tokenizer_json().encode(), load_tokenizer),
        "tiktoken": ("ranks.tiktoken", ranks.encode(), lambda p: load_tokenizer(p, pattern="cl100k")),
        "bytes-model": ("bytes.model", trained.to_text().encode(), load_tokenizer),
        "config-json": ("config.json", json.dumps(_config()).encode(), LlamaConfig.load),
        "safetensors": ("seed.safetensors", (folder / "seed.safetensors").read_bytes(), read_safetensors),
        "safetensors-index": ("model.safetensors.index.json",
                              json.dumps({"metadata": {}, "weight_map": {"w": "a.safetensors", "b": "a.safetensors"}}).encode(),
                              read_index),
        "gguf": ("tiny.gguf", _tiny_gguf(folder), lambda p: load(str(p))),
        "ollama-manifest": ("manifests/registry.ollama.ai/library/tiny/latest", json.dumps({"layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + "ab" * 32, "size": 4}]}).encode(),
            read_manifest),
        "chat-template": ("template.jinja", _template().encode(), read_template),
        "tokenizer-config": ("tokenizer_config.json", json.dumps({"eos_token": "</s>", "bos_token": {"content": "<s>"},
                             "add_bos_token": True, "chat_template": _template()}).encode(), load_folder_reader(load_folder)),
        "generation-config": ("generation_config.json", json.dumps({"eos_token_id": [2, 1], "temperature": 0.6,
                              "top_p": 0.9, "do_sample": True}).encode(), load_folder_reader(load_folder)),
    }
    return seeds


def load_folder_reader(load_folder):
    """Reader for files inside a model folder: the folder (prepared by prepare_folder) is loaded."""
    return lambda path: load_folder(path.parent)


def _config() -> dict:
    return dict(model_type="llama", hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, vocab_size=512, max_position_embeddings=64, rms_norm_eps=1e-5,
                rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)


def _template() -> str:
    return ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token + '\\n' }}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")


def _tiny_gguf(folder: Path) -> bytes:
    """A complete little model: llama arch, a 300-token byte-level vocabulary, Q8_0 and F32 tensors."""
    import gguf
    import numpy as np
    from bpe.pipeline import BYTE_TO_CHAR
    path = folder / "tiny-seed.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    for key, value in [("context_length", 64), ("embedding_length", 32), ("block_count", 1),
                       ("feed_forward_length", 32), ("head_count", 2), ("head_count_kv", 1)]:
        getattr(w, f"add_{key}")(value)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    tokens = [BYTE_TO_CHAR[b] for b in range(256)] + ["Ġt", "he", "Ġthe"] + [f"<x{k}>" for k in range(41)]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([1] * 259 + [3] * 41)
    w.add_token_merges(["Ġ t", "h e", "Ġt he"])
    w.add_bos_token_id(259)
    w.add_eos_token_id(260)
    w.add_chat_template(_template())
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (300, 32), "output_norm.weight": (32,), "blk.0.attn_norm.weight": (32,),
              "blk.0.attn_q.weight": (32, 32), "blk.0.attn_k.weight": (16, 32), "blk.0.attn_v.weight": (16, 32),
              "blk.0.attn_output.weight": (32, 32), "blk.0.ffn_norm.weight": (32,), "blk.0.ffn_gate.weight": (32, 32),
              "blk.0.ffn_up.weight": (32, 32), "blk.0.ffn_down.weight": (32, 32)}
    for name, shape in shapes.items():
        x = rng.standard_normal(shape).astype(np.float32)
        if len(shape) == 2 and "attn_q" not in name:
            w.add_tensor(name, gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, x)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def prepare_folder(case_dir: Path, fmt: str, folder: Path) -> None:
    """Companion files a format's reader needs beside the mutated file."""
    if fmt == "safetensors-index":
        (case_dir / "a.safetensors").write_bytes((folder / "seed.safetensors").read_bytes())
    elif fmt in ("tokenizer-config", "generation-config"):
        from model.weights import save_safetensors
        import numpy as np
        cfg = _config()
        (case_dir / "config.json").write_text(json.dumps(cfg))
        (case_dir / "tokenizer.model").write_bytes((folder / "tok512.model").read_bytes())
        from model.weights import expected_shapes
        from model.config import LlamaConfig
        shapes = expected_shapes(LlamaConfig.from_dict(cfg))
        save_safetensors(case_dir / "model.safetensors", {n: np.ones(s, np.float32) for n, s in shapes.items()}, "F32")
    elif fmt == "ollama-manifest":
        (case_dir / "blobs").mkdir(exist_ok=True)
        (case_dir / "blobs" / ("sha256-" + "ab" * 32)).write_bytes((folder / "tiny-seed.gguf").read_bytes())


# --- mutations --------------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One random structural mutation of raw bytes."""
    b = bytearray(data)
    kind = rng.choice(["flip", "overwrite", "truncate", "splice", "int", "int", "zero-run"])
    if not b:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "overwrite":
        i = rng.randrange(len(b))
        b[i:i + 4] = bytes(rng.getrandbits(8) for _ in range(4))
    elif kind == "truncate":
        return bytes(b[:rng.randrange(len(b))])
    elif kind == "splice":
        i, j = rng.randrange(len(b)), rng.randrange(len(b))
        n = rng.randint(1, 64)
        b[i:i + n] = b[j:j + n]
    elif kind == "int":
        width = rng.choice([4, 8])
        i = rng.randrange(0, max(1, len(b) - width + 1))
        value = rng.choice(SPECIAL_INTS + [-1])
        b[i:i + width] = struct.pack("<q" if width == 8 else "<i", value) if value < 0 else \
            (value % (1 << (8 * width))).to_bytes(width, "little")
    else:
        i = rng.randrange(len(b))
        b[i:i + rng.randint(1, 32)] = bytes(rng.randint(1, 32))
    return bytes(b)


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """A value of the wrong type, a deleted or duplicated key, somewhere in a JSON document."""
    try:
        doc = json.loads(data)
    except ValueError:
        return mutate_bytes(data, rng)
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for k, v in enumerate(node[:50]):
                walk(v, path + [k])
    walk(doc, [])
    path = rng.choice(paths[1:] or paths)
    wrong = rng.choice([None, True, -1, 0, 2**31, 2**63, 2**64, 1e308, -1e-9, 0.5, "", "x", "../../etc/passwd",
                        "/etc/passwd", [], {}, [1, "a"], {"a": None}, "x" * 1000, 10**30])
    if not path:
        return json.dumps(wrong).encode()
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    action = rng.choice(["replace", "replace", "replace", "delete", "duplicate"])
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(parent[path[-1]])
    else:
        parent[path[-1]] = wrong
    return json.dumps(doc).encode()


def mutate(fmt: str, data: bytes, rng: random.Random) -> bytes:
    """A mutation suited to the format (JSON-aware for JSON files, bytes otherwise; sometimes both)."""
    out = data
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        is_json = out[:1] in (b"{", b"[")
        out = mutate_json(out, rng) if is_json and rng.random() < 0.7 else mutate_bytes(out, rng)
    return out


# --- running cases ------------------------------------------------------------------------------
def vm_size() -> int:
    """This process's virtual memory size in bytes (the base for the child's RLIMIT_AS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def run_case(reader, path: Path, errors: tuple, *, seconds: int = 10, extra_bytes: int) -> dict:
    """Run reader(path) in a forked child under limits; return its outcome, time and memory growth."""
    limit = vm_size() + extra_bytes
    r, w = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: limits, then the reader
        os.close(r)
        code, message = 0, b""
        rss_before = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        try:
            import numpy
            numpy.seterr(all="ignore")  # NaN weights in a mutated file are data, not a finding
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            signal.alarm(seconds)
            reader(path)
        except errors as e:
            code, message = ERROR_EXIT, str(e).encode(errors="replace")[:500]
        except BaseException as e:  # noqa: B902 -- the finding we are looking for
            code, message = OTHER_EXIT, f"{type(e).__name__}: {e}".encode(errors="replace")[:500]
        growth = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before)
        os.write(w, f"{growth}\n".encode() + message)
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        growth, _, message = pipe.read().decode(errors="replace").partition("\n")
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        outcome = "timeout" if sig == signal.SIGALRM else f"signal {signal.Signals(sig).name}"
    else:
        outcome = {0: "load", ERROR_EXIT: "error", OTHER_EXIT: "other"}.get(os.WEXITSTATUS(status), "other")
    return dict(outcome=outcome, message=message, seconds=elapsed, memory=int(growth) if growth.isdigit() else 0)


FORMATS = ("spm-model", "tokenizer-json", "tiktoken", "bytes-model", "config-json", "safetensors", "safetensors-index",
           "gguf", "ollama-manifest", "chat-template", "tokenizer-config", "generation-config")


def fuzz(cases: int, seed: int, workdir: Path, fixtures: Path, formats=None, log=print) -> dict:
    """Run `cases` mutated cases spread over the formats; return per-format figures and findings."""
    errors = project_errors()
    seeds = build_seeds(workdir, fixtures)
    assert tuple(seeds) == FORMATS, "FORMATS must name every seed"
    (workdir / "tok512.model").write_bytes(seeds["spm-model"][1])
    formats = formats or list(seeds)
    rng = random.Random(seed)
    stats = {f: dict(cases=0, load=0, error=0, other=0, slowest=0.0, memory_ratio=0.0, memory_mb=0.0) for f in formats}
    findings = []
    for k in range(cases):
        fmt = formats[k % len(formats)]
        name, data, reader = seeds[fmt]
        case_dir = workdir / f"case-{k}"
        (case_dir / name).parent.mkdir(parents=True, exist_ok=True)
        prepare_folder(case_dir, fmt, workdir)
        mutated = data if k < len(formats) else mutate(fmt, data, rng)  # the first round: the seeds as they are
        path = case_dir / name
        path.write_bytes(mutated)
        result = run_case(reader, path, errors, extra_bytes=(256 << 20) + 64 * len(mutated))
        s = stats[fmt]
        s["cases"] += 1
        key = result["outcome"] if result["outcome"] in ("load", "error") else "other"
        s[key] += 1
        s["slowest"] = max(s["slowest"], result["seconds"])
        s["memory_ratio"] = max(s["memory_ratio"], result["memory"] / max(len(mutated), 1))
        s["memory_mb"] = max(s["memory_mb"], result["memory"] / 1e6)
        if key == "other":
            keep = workdir / "findings" / f"{fmt}-{k}-{name.replace('/', '_')}"
            keep.parent.mkdir(exist_ok=True)
            keep.write_bytes(mutated)
            findings.append((fmt, k, result["outcome"], result["message"], str(keep)))
            log(f"finding: {fmt} case {k}: {result['outcome']} {result['message'][:200]} (kept as {keep})")
        _remove(case_dir)
    return dict(stats=stats, findings=findings)


def _remove(folder: Path) -> None:
    for p in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
    folder.rmdir()
