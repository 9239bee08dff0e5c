"""The `python -m bpe` command line: spm_encode-like output, and one-line errors with exit status 2."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, assert_clean_error, fixture_path

spm = pytest.importorskip("sentencepiece")


def run(*args, stdin=""):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "bpe", *args], input=stdin, capture_output=True, text=True, env=env)


def test_encode_decode_like_spm(llama_model_path):
    sp = spm.SentencePieceProcessor(model_file=str(llama_model_path))
    text = "Hello  world\n  two leading spaces, 42 digits 😀\n\n"
    res = run("encode", "--model", str(llama_model_path), stdin=text)
    lines = res.stdout.split("\n")[:-1]
    assert lines == [" ".join(map(str, sp.encode(s))) for s in text.split("\n")[:-1]]
    pieces = run("encode", "--model", str(llama_model_path), "--output-format", "piece", "--bos", stdin="Hello  world\n")
    assert pieces.stdout == "<s> ▁Hello ▁ ▁world\n"
    spm_style = run("encode", "--model", str(llama_model_path), "--output_format=piece", "--bos", stdin="Hello  world\n")
    assert spm_style.stdout == pieces.stdout  # spm_encode's spelling works too
    back = run("decode", "--model", str(llama_model_path), stdin=res.stdout)
    assert back.stdout.split("\n")[:-1] == [sp.decode(sp.encode(s)) for s in text.split("\n")[:-1]]


def test_decode_pieces(llama_model_path):
    res = run("decode", "--model", str(llama_model_path), "--input-format", "piece",
              stdin="▁Hello ▁ ▁world <0xF0> <0x9F> <0x98> <0x80>\n")
    assert res.stdout == "Hello  world😀\n"
    assert_clean_error(run("decode", "--model", str(llama_model_path), "--input-format", "piece", stdin="▁Hi nopiece\n"),
                       "'nopiece'")


def test_tokenizer_json_encodes_like_the_model(llama_model_path):
    json_path = fixture_path("llama2-tokenizer.json")
    text = "Hello  world\n" + fixture_path("tinystories-valid-100.txt").read_text(encoding="utf-8")[:5000]
    a = run("encode", "--model", str(json_path), stdin=text)
    b = run("encode", "--model", str(llama_model_path), stdin=text)
    assert a.returncode == 0 and a.stdout == b.stdout


def test_train_both_styles(tmp_path):
    corpus = ROOT / "scripts" / "data" / "toy_corpus.txt"
    for style, size in [("sentencepiece", 400), ("bytes", 300)]:
        prefix = tmp_path / style
        res = run("train", "--input", str(corpus), "--vocab-size", str(size), "--model-prefix", str(prefix), "--style", style)
        assert res.returncode == 0, res.stderr
        assert (tmp_path / f"{style}.vocab").read_text(encoding="utf-8").count("\n") == size
        enc = run("encode", "--model", f"{prefix}.model", stdin="the tokenizer\n")
        dec = run("decode", "--model", f"{prefix}.model", stdin=enc.stdout)
        assert dec.stdout == "the tokenizer\n"
    assert spm.SentencePieceProcessor(model_file=str(tmp_path / "sentencepiece.model")).get_piece_size() == 400


def test_bad_model_files(tmp_path):
    missing = tmp_path / "nope.model"
    assert_clean_error(run("encode", "--model", str(missing), stdin="x\n"), str(missing))
    corrupt = tmp_path / "corrupt.model"
    corrupt.write_bytes(b"\x0a\xff\xff\xff\x0f garbage")
    assert_clean_error(run("encode", "--model", str(corrupt), stdin="x\n"), str(corrupt))
    text = tmp_path / "text.model"
    text.write_text("just some text, not a model\n")
    assert_clean_error(run("encode", "--model", str(text), stdin="x\n"), str(text))
    wrong_json = tmp_path / "tokenizer.json"
    wrong_json.write_text('{"model": {"type": "WordPiece"}}')
    assert_clean_error(run("encode", "--model", str(wrong_json), stdin="x\n"), str(wrong_json), "BPE")
    truncated = tmp_path / "truncated.model"
    truncated.write_bytes(fixture_path("tok512.model").read_bytes()[:3000])
    assert_clean_error(run("encode", "--model", str(truncated), stdin="x\n"), str(truncated))


def test_bad_ids(llama_model_path):
    assert_clean_error(run("decode", "--model", str(llama_model_path), stdin="1 32000\n"), "32000", "out of range")
    assert_clean_error(run("decode", "--model", str(llama_model_path), stdin="1 -5\n"), "-5")
    assert_clean_error(run("decode", "--model", str(llama_model_path), stdin="1 two\n"), "'two'")


def test_bad_training_input(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    prefix = tmp_path / "out"
    assert_clean_error(run("train", "--input", str(empty), "--vocab-size", "300", "--model-prefix", str(prefix)), "empty")
    corpus = str(ROOT / "scripts" / "data" / "toy_corpus.txt")
    assert_clean_error(run("train", "--input", corpus, "--vocab-size", "100", "--model-prefix", str(prefix)), "100", "byte alphabet")
    assert_clean_error(run("train", "--input", corpus, "--vocab-size", "200", "--model-prefix", str(prefix), "--style", "bytes"), "byte alphabet")
    assert_clean_error(run("train", "--input", str(tmp_path / "missing.txt"), "--vocab-size", "300", "--model-prefix", str(prefix)), "missing.txt")
    assert_clean_error(run("train", "--input", corpus, "--vocab-size", "x", "--model-prefix", str(prefix)), "vocab-size")
    assert_clean_error(run("train", "--input", corpus, "--vocab-size", "400", "--model-prefix", "/proc/x/y"), "/proc/x")
    assert list(tmp_path.iterdir()) == [empty]  # nothing half-written


@pytest.mark.parametrize("style", ["sentencepiece", "bytes"])
def test_a_vocabulary_larger_than_the_corpus_supports_stops_with_a_notice(tmp_path, style):
    corpus = str(ROOT / "scripts" / "data" / "toy_corpus.txt")
    res = run("train", "--input", corpus, "--vocab-size", "100000", "--model-prefix", str(tmp_path / "t"), "--style", style)
    assert res.returncode == 0 and "the corpus supports only" in res.stderr
    size = int(res.stderr.split("supports only ")[1].split()[0])
    assert (tmp_path / "t.vocab").read_text(encoding="utf-8").count("\n") == size < 100000
    if style == "sentencepiece":
        assert spm.SentencePieceProcessor(model_file=str(tmp_path / "t.model")).get_piece_size() == size


def test_trainer_keeps_a_lone_carriage_return_in_its_line(tmp_path):
    from bpe.sentencepiece_trainer import read_blocks
    path = tmp_path / "c.txt"
    path.write_bytes(b"a\rb\nc\r\nd")
    assert [line for block in read_blocks([path]) for line in block] == ["a\rb", "c\r", "d"]


def test_trained_files_get_the_usual_mode(tmp_path):
    corpus = str(ROOT / "scripts" / "data" / "toy_corpus.txt")
    old = os.umask(0o022)
    try:
        assert run("train", "--input", corpus, "--vocab-size", "400", "--model-prefix", str(tmp_path / "m")).returncode == 0
    finally:
        os.umask(old)
    assert (tmp_path / "m.model").stat().st_mode & 0o777 == 0o644


def test_encode_reads_bytes_like_spm(llama_model_path, tmp_path):
    # "\r" stays part of the line; invalid UTF-8 becomes one U+FFFD per bad byte, as SentencePiece reads it
    sp = spm.SentencePieceProcessor(model_file=str(llama_model_path))
    data = b"a\r\nb\xe2\x82 c\xff\n\xf0\x9f\x98\n\xc0\xaf  x\n"
    path = tmp_path / "weird.txt"
    path.write_bytes(data)
    res = run("encode", "--model", str(llama_model_path), str(path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [" ".join(map(str, sp.encode(line))) for line in data.split(b"\n")[:-1]]


# --- byte-level vocabularies through the CLI ----------------------------------------------------
@pytest.fixture(scope="module")
def smollm2_json():
    from conftest import smollm2_tokenizer_json
    return smollm2_tokenizer_json()


@pytest.mark.oracle
def test_encode_decode_byte_level_like_hf(smollm2_json):
    from tokenizers import Tokenizer
    hf = Tokenizer.from_file(str(smollm2_json))
    text = "Hello  world <|im_start|>user\n42 digits 😀 \t tabs\n\n"
    lines = text.split("\n")[:-1]
    for flags, special in [([], False), (["--special"], True)]:
        res = run("encode", "--model", str(smollm2_json), *flags, stdin=text)
        assert res.returncode == 0, res.stderr
        hf.encode_special_tokens = not special
        assert res.stdout.split("\n")[:-1] == [" ".join(map(str, hf.encode(s, add_special_tokens=False).ids)) for s in lines]
    pieces = run("encode", "--model", str(smollm2_json), "--output-format", "piece", stdin=" hello world\n")
    assert pieces.stdout == "Ġhello Ġworld\n"
    ids = "1 9906 2 216 55 217 243 10\n"  # includes special ids and a lone byte token
    dec = run("decode", "--model", str(smollm2_json), stdin=ids)
    assert dec.stdout == hf.decode([int(i) for i in ids.split()], skip_special_tokens=False) + "\n"
    back = run("decode", "--model", str(smollm2_json), "--input-format", "piece", stdin="Ġhello Ġworld\n")
    assert back.stdout == " hello world\n"


@pytest.mark.oracle
def test_bos_note_when_the_tokenizer_has_none(smollm2_json):
    res = run("encode", "--model", str(smollm2_json), "--bos", stdin="hi\n")
    assert res.returncode == 0 and "defines no token for --bos" in res.stderr


def test_rank_file_through_the_cli(tmp_path):
    import base64
    tiktoken = pytest.importorskip("tiktoken")
    ranks = {bytes([b]): b for b in range(256)}
    for word in [b"th", b"the", b" t", b" the", b"he", b"in", b"ing"]:
        ranks[word] = len(ranks)
    path = tmp_path / "ranks.tiktoken"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks.items()))
    from bpe.patterns import GPT2
    ref = tiktoken.Encoding(name="t", pat_str=GPT2, mergeable_ranks=ranks, special_tokens={})
    res = run("encode", "--model", str(path), "--pattern", "gpt2", stdin="the thing in the\n")
    assert res.stdout == " ".join(map(str, ref.encode_ordinary("the thing in the"))) + "\n"
    assert_clean_error(run("encode", "--model", str(path), stdin="x\n"), "--pattern")
    assert_clean_error(run("encode", "--model", str(path), "--pattern", "nope", stdin="x\n"), "nope")
    path.write_text(path.read_text() + "not base64!! x\n")
    assert_clean_error(run("encode", "--model", str(path), "--pattern", "gpt2", stdin="x\n"), "line 264")


@pytest.mark.parametrize("spec, words", [
    ({"model": {"type": "Unigram", "vocab": []}}, ["Unigram"]),
    ({"model": {"type": "WordPiece", "vocab": {}}}, ["WordPiece"]),
    ({"model": {"type": "BPE", "vocab": {"a": "1"}, "merges": []}}, ["id of 'a'"]),
    ({"model": {"type": "BPE", "vocab": {"a": 1.5}, "merges": []}}, ["id of 'a'"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}, "pre_tokenizer": {"type": "ByteLevel"}},
     ["merges[0]"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel"}},
     ["not in the vocabulary"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": ["x"]}, ["added_tokens[0]"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": "x"}, ["normalizer"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "BertPreTokenizer"}},
     ["BertPreTokenizer"]),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Precompiled"}},
     ["Precompiled"]),
])
def test_bad_tokenizer_json(tmp_path, spec, words):
    import json
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    assert_clean_error(run("encode", "--model", str(path), stdin="a\n"), str(path), *words)


@pytest.mark.oracle
def test_byte_level_decode_rejects_bad_ids(smollm2_json):
    assert_clean_error(run("decode", "--model", str(smollm2_json), stdin="1 99999999\n"), "99999999")
    for bad in ["٣", "1_000", "+15", "-1"]:
        assert_clean_error(run("decode", "--model", str(smollm2_json), stdin=f"{bad}\n"), repr(bad))


def test_sentencepiece_style_tokenizer_json_decodes_as_hf(llama_model_path):
    """For a tokenizer.json, decode is HF's (control tokens as text, a bad byte run as U+FFFDs);
    for the .model file it stays spm_decode's."""
    from tokenizers import Tokenizer
    json_path = fixture_path("llama2-tokenizer.json")
    hf = Tokenizer.from_file(str(json_path))
    cases = [[1, 15043], [15043], [0, 15043], [198, 172, 258, 263], [229, 133, 263], [263, 2, 29871, 13], [1, 2, 1],
             [29871, 29871, 1], [3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80]]
    stdin = "".join(" ".join(map(str, ids)) + "\n" for ids in cases)
    res = run("decode", "--model", str(json_path), stdin=stdin)
    assert res.stdout == "".join(hf.decode(ids, skip_special_tokens=False) + "\n" for ids in cases)
    sp = spm.SentencePieceProcessor(model_file=str(llama_model_path))
    res = run("decode", "--model", str(llama_model_path), stdin=stdin)
    assert res.stdout == "".join(sp.decode(ids) + "\n" for ids in cases)
