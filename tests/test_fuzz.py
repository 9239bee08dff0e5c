"""Model files are untrusted input: a fuzz run, hypothesis properties of the parsers, and one named
regression test per class of published reader vulnerability, each run under a memory limit."""
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from files.gguf import GGUFError, GGUFFile

from conftest import FIXTURES, fixture_path
from testkit.fuzzing import fuzz, project_errors, run_case

pytest.importorskip("gguf")
LIMIT = 64 << 20  # the child may grow by this much at most: far below what the lies in these files claim


def test_fuzz_a_few_hundred_cases(tmp_path):
    fixture_path("tok512.model")
    result = fuzz(240, seed=0, workdir=tmp_path, fixtures=FIXTURES, log=lambda m: None)
    assert not result["findings"], result["findings"][:3]
    assert all(s["load"] >= 1 and s["error"] >= 1 for s in result["stats"].values()), result["stats"]


# --- GGUF bytes by hand: header, metadata and tensor infos ----------------------------------------
def gstr(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def gguf_bytes(kvs: list[bytes], tensors: list[bytes] = (), version: int = 3, n_tensors=None, n_kv=None) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    return body + b"\0" * (-len(body) % 32)


def kv(key: str, type_id: int, payload: bytes) -> bytes:
    return gstr(key.encode()) + struct.pack("<I", type_id) + payload


def tensor_info(name: bytes, dims: list[int], type_id: int = 0, offset: int = 0) -> bytes:
    return gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", type_id, offset)


def expect_clean_error(tmp_path, data: bytes, *words, reader=None):
    """The reader, in a child under a small memory limit, must fail with one of our errors naming the file."""
    path = tmp_path / "evil.gguf"
    path.write_bytes(data)
    result = run_case(reader or GGUFFile, path, project_errors(), seconds=10, extra_bytes=LIMIT)
    assert result["outcome"] == "error", result
    assert str(path) in result["message"] or not words, result["message"]
    for w in words:
        assert w in result["message"], result["message"]
    return result


# CVE-2024-23496 (llama.cpp): crafted n_dims / counts overflowed a heap buffer
def test_cve_2024_23496_too_many_dims(tmp_path):
    expect_clean_error(tmp_path, gguf_bytes([], [tensor_info(b"t", [1] * 9)]), "dimensions")


def test_dims_whose_product_overflows_64_bits(tmp_path):
    expect_clean_error(tmp_path, gguf_bytes([], [tensor_info(b"t", [2**40, 2**40])]), "do not fit")


# CVE-2025-49847 (llama.cpp): a token text length that overflows when copied
def test_cve_2025_49847_huge_string_length(tmp_path):
    tokens = kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 1) + struct.pack("<Q", 2**63) + b"abc")
    expect_clean_error(tmp_path, gguf_bytes([tokens]), "truncated or corrupted")


# ollama's unbounded allocation in its metadata parser: an array count the file cannot hold
@pytest.mark.parametrize("item, count", [(0, 2**62), (8, 2**62), (6, 2**61), (9, 2**40)])
def test_unbounded_array_counts(tmp_path, item, count):
    expect_clean_error(tmp_path, gguf_bytes([kv("x.array", 9, struct.pack("<IQ", item, count))]))


def test_header_counts_the_file_cannot_hold(tmp_path):
    expect_clean_error(tmp_path, gguf_bytes([], n_tensors=2**62), "too small")
    expect_clean_error(tmp_path, gguf_bytes([], n_kv=2**64 - 1), "too small")


# CVE-2026-7482 (ollama) and ggml-org/llama.cpp#19003, #19856: offsets past the end, overlapping data
def test_offsets_past_the_end_and_overlaps(tmp_path):
    expect_clean_error(tmp_path, gguf_bytes([], [tensor_info(b"t", [8], 0, 2**63)]), "past the end")
    expect_clean_error(tmp_path, gguf_bytes([], [tensor_info(b"t", [8], 0, 2**64 - 32)]), "past the end")
    data = gguf_bytes([], [tensor_info(b"a", [8], 0, 0), tensor_info(b"b", [8], 0, 0)]) + b"\0" * 64
    expect_clean_error(tmp_path, data, "overlap")
    data = gguf_bytes([], [tensor_info(b"a", [8], 0, 0), tensor_info(b"a", [8], 0, 32)]) + b"\0" * 96
    expect_clean_error(tmp_path, data, "duplicate tensor")


def test_ggml_corrupted_cases(tmp_path):
    """ggml's own list of corrupted GGUF files: each one a clean error."""
    good_kv = kv("general.architecture", 8, gstr(b"llama"))
    cases = {
        "bad magic": b"GGUX" + gguf_bytes([good_kv])[4:],
        "bad version": gguf_bytes([good_kv], version=0),
        "empty key": gguf_bytes([kv("", 4, struct.pack("<I", 1))]),
        "duplicate key": gguf_bytes([good_kv, good_kv]),
        "bad value type": gguf_bytes([kv("x", 13, b"\0" * 8)]),
        "bad array type": gguf_bytes([kv("x", 9, struct.pack("<IQ", 99, 1))]),
        "bad alignment": gguf_bytes([kv("general.alignment", 4, struct.pack("<I", 24))]),
        "zero alignment": gguf_bytes([kv("general.alignment", 4, struct.pack("<I", 0))]),
        "zero dim": gguf_bytes([], [tensor_info(b"t", [0])]),
        "bad tensor type": gguf_bytes([], [tensor_info(b"t", [32], 99)]),
        "row not whole blocks": gguf_bytes([], [tensor_info(b"t", [33], 8)]) + b"\0" * 64,
        "misaligned": gguf_bytes([], [tensor_info(b"t", [4], 0, 4)]) + b"\0" * 64,
        "not enough data": gguf_bytes([], [tensor_info(b"t", [1024], 0, 0)]) + b"\0" * 64,
        "key not utf-8": gguf_bytes([gstr(b"\xff\xfe") + struct.pack("<I", 4) + b"\0" * 4]),
    }
    for name, data in cases.items():
        expect_clean_error(tmp_path, data)


# CVE-2024-34359 (llama-cpp-python): chat templates from model files ran code
@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{% for x in range(10**9) %}{{ x }}{% endfor %}",
    "{{ 'a' * 10**9 }}",
    "{{ (messages|list).append(1) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{{ raise_exception('no system messages') }}",
    "{% for %}",
])
def test_cve_2024_34359_templates_cannot_reach_python(tmp_path, template):
    from model.chat import ChatFormat

    def render(path):
        ChatFormat(Path(path).read_text(), tokens={"eos_token": "</s>"}).render([{"role": "user", "content": "hi"}])
    path = tmp_path / "template.jinja"
    path.write_text(template)
    result = run_case(render, path, project_errors(), seconds=20, extra_bytes=LIMIT)
    assert result["outcome"] == "error", result


def test_shard_paths_stay_in_the_folder(tmp_path):
    from model.weights import WeightsError, checkpoint_files
    for shard in ["../../etc/passwd", "/etc/passwd", "..", "a/../../b.safetensors", 7]:
        (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": shard}}))
        with pytest.raises(WeightsError, match="not a file name"):
            checkpoint_files(tmp_path)


def test_ollama_digests_and_names_are_checked(tmp_path, monkeypatch):
    from model.formats.ollama import OllamaError, resolve
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path))
    manifest = tmp_path / "manifests" / "registry.ollama.ai" / "library" / "m" / "latest"
    manifest.parent.mkdir(parents=True)
    for digest in ["sha256:../../../etc/passwd", "sha256:" + "g" * 64, "md5:" + "a" * 32, None]:
        manifest.write_text(json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": digest}]}))
        with pytest.raises(OllamaError, match="digest|layers"):
            resolve("ollama:m")
    for name in ["ollama:../../x", "ollama:a/b/c/d", "ollama:m:../x", "ollama:"]:
        with pytest.raises(OllamaError):
            resolve(name)


# --- hypothesis: the parsers that take structured input ------------------------------------------
VALUES = st.one_of(
    st.tuples(st.just(4), st.integers(0, 2**32 - 1)), st.tuples(st.just(5), st.integers(-2**31, 2**31 - 1)),
    st.tuples(st.just(10), st.integers(0, 2**64 - 1)), st.tuples(st.just(11), st.integers(-2**63, 2**63 - 1)),
    st.tuples(st.just(7), st.booleans()), st.tuples(st.just(8), st.text(max_size=20)),
    st.tuples(st.just(12), st.floats(allow_nan=False)),
    st.tuples(st.just(9), st.lists(st.integers(0, 255), max_size=10)),
    st.tuples(st.just(19), st.lists(st.text(max_size=8), max_size=5)))


def encode_value(type_id, value) -> tuple[int, bytes]:
    if type_id == 8:
        return 8, gstr(value.encode())
    if type_id == 9:
        return 9, struct.pack("<IQ", 0, len(value)) + bytes(value)
    if type_id == 19:  # an array of strings
        return 9, struct.pack("<IQ", 8, len(value)) + b"".join(gstr(v.encode()) for v in value)
    fmt = {4: "<I", 5: "<i", 10: "<Q", 11: "<q", 7: "<?", 12: "<d"}[type_id]
    return type_id, struct.pack(fmt, value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k != "general.alignment"), VALUES, max_size=6))
def test_gguf_metadata_round_trips(tmp_path_factory, entries):
    kvs = []
    for key, (type_id, value) in entries.items():
        t, payload = encode_value(type_id, value)
        kvs.append(kv(key, t, payload))
    path = tmp_path_factory.mktemp("meta") / "m.gguf"
    path.write_bytes(gguf_bytes(kvs))
    got = GGUFFile(path).metadata
    assert got == {k: v for k, (_, v) in entries.items()}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_protobuf_reader_never_fails_otherwise(data):
    from bpe.model_file import ModelFileError, ModelProto
    try:
        ModelProto.from_bytes(data)
    except ModelFileError:
        pass


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
                       lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={"model": JSONISH, "normalizer": JSONISH, "pre_tokenizer": JSONISH,
                                           "added_tokens": JSONISH, "post_processor": JSONISH}),
       st.sampled_from(["BPE", "Unigram", None]))
def test_tokenizer_json_shapes_fail_cleanly(spec, kind):
    from bpe.hf_json import from_spec
    from bpe.pipeline import SpecError
    if kind and isinstance(spec.get("model"), dict):
        spec["model"]["type"] = kind
    try:
        from_spec(spec, "t.json")
    except (SpecError, ValueError):
        pass


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                        "num_key_value_heads", "vocab_size", "max_position_embeddings", "rms_norm_eps",
                                        "rope_theta", "rope_scaling", "tie_word_embeddings", "eos_token_id",
                                        "head_dim", "model_type", "sliding_window", "use_sliding_window",
                                        "layer_types", "rope_parameters"]), JSONISH, max_size=18))
def test_config_shapes_fail_cleanly(fields):
    from model.config import ConfigError, LlamaConfig
    base = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2, vocab_size=10,
                max_position_embeddings=8, rms_norm_eps=1e-5)
    try:
        LlamaConfig.from_dict({**base, **fields})
    except ConfigError:
        pass
