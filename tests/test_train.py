"""The trainers: incremental merges equal a full recount; exported models agree with SentencePiece."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from bpe.bytes_trainer import GPT4_PATTERN, ByteTokenizer, RegexWords, train_bytes
from bpe.files import load_tokenizer, save_model
from bpe.merges import get_stats, learn_merges, merge
from bpe.sentencepiece import SentencePieceTokenizer
from bpe.sentencepiece_trainer import train_sentencepiece

from conftest import fixture_path

spm = pytest.importorskip("sentencepiece")


def naive_merges(words: dict, symbols: list, target: int):
    """Reference: recount every pair after every merge (slow, obviously right)."""
    words = {tuple(w): c for w, c in words.items()}
    symbols, out = list(symbols), []
    while len(symbols) < target:
        counts = {}
        for w, c in words.items():
            for p, k in get_stats(list(w)).items():
                counts[p] = counts.get(p, 0) + k * c
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], len(symbols[p[0]] + symbols[p[1]]), symbols[p[0]] + symbols[p[1]]))
        joined = symbols[pair[0]] + symbols[pair[1]]
        new = symbols.index(joined) if joined in symbols else len(symbols)
        if new == len(symbols):
            symbols.append(joined)
        out.append((pair[0], pair[1], new))
        merged = {}
        for w, c in words.items():
            key = tuple(merge(list(w), pair, new))
            merged[key] = merged.get(key, 0) + c
        words = merged
    return out


def test_learn_merges_by_hand():
    # "abab" twice and "abc" once: ab occurs 5 times, then ab+ab twice
    merges = learn_merges({(0, 1, 0, 1): 2, (0, 1, 2): 1}, ["a", "b", "c"], 5)
    assert merges == [(0, 1, 3), (3, 3, 4)]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(alphabet="abcd", min_size=1, max_size=8), st.integers(1, 5), min_size=1, max_size=12),
       st.integers(4, 30))
def test_incremental_equals_full_recount(corpus, extra):
    symbols = ["a", "b", "c", "d"]
    words = {tuple(symbols.index(ch) for ch in w): c for w, c in corpus.items()}
    assert learn_merges(words, list(symbols), 4 + extra) == naive_merges(words, symbols, 4 + extra)


@pytest.fixture(scope="module")
def trained_sp(tmp_path_factory):
    stories = fixture_path("tinystories-valid-100.txt")
    prefix = str(tmp_path_factory.mktemp("sp") / "stories")
    save_model(train_sentencepiece([stories], 700), prefix)
    return SentencePieceTokenizer.load(prefix + ".model"), spm.SentencePieceProcessor(model_file=prefix + ".model")


def test_trained_model_layout(trained_sp):
    ours, ref = trained_sp
    assert ref.get_piece_size() == 700
    assert [ours.pieces[i] for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert ours.pieces[3] == "<0x00>" and ours.pieces[258] == "<0xFF>"
    merged = [p for p in ours.pieces[259:] if len(p) > 1]
    assert all(len(p) <= 16 and "▁" not in p.lstrip("▁") for p in merged)
    assert not any(ch.isdigit() for p in merged for ch in p)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_trained_model_encodes_like_sentencepiece(trained_sp, text):
    ours, ref = trained_sp
    assert ours.encode(text) == ref.encode(text)


def test_trained_model_on_corpus_lines(trained_sp):
    ours, ref = trained_sp
    lines = fixture_path("tinyshakespeare.txt").read_text(encoding="utf-8").splitlines()[:5000]
    assert [ours.encode(s) for s in lines] == [ref.encode(s) for s in lines]


def test_compression_within_3_percent_of_sentencepiece_trainer(tmp_path):
    lines = fixture_path("tinyshakespeare.txt").read_text(encoding="utf-8").splitlines()
    cut = len(lines) * 9 // 10
    train_file = tmp_path / "train.txt"
    train_file.write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    held_out = lines[cut:]
    ours = SentencePieceTokenizer(train_sentencepiece([train_file], 4096))
    spm.SentencePieceTrainer.train(
        input=str(train_file), model_prefix=str(tmp_path / "ref"), vocab_size=4096, model_type="bpe",
        byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False, normalization_rule_name="identity", minloglevel=2)
    ref = spm.SentencePieceProcessor(model_file=str(tmp_path / "ref.model"))
    n_ours = sum(len(ours.encode(s)) for s in held_out)
    n_ref = sum(len(ref.encode(s)) for s in held_out)
    assert n_ours <= 1.03 * n_ref, (n_ours, n_ref)


@pytest.fixture(scope="module")
def trained_bytes(tmp_path_factory):
    text = fixture_path("tinystories-valid-100.txt").read_text(encoding="utf-8")
    words = {}
    for chunk in RegexWords(GPT4_PATTERN)(text):
        words[chunk] = words.get(chunk, 0) + 1
    tok = train_bytes(words, 600, special_tokens=["<|endoftext|>"])
    prefix = str(tmp_path_factory.mktemp("bytes") / "stories")
    save_model(tok, prefix)
    return load_tokenizer(prefix + ".model")


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_bytes_style_round_trips_every_string(trained_bytes, text):
    assert trained_bytes.decode(trained_bytes.encode(text)) == text


def test_bytes_style_special_tokens(trained_bytes):
    eot = trained_bytes.special["<|endoftext|>"]
    assert trained_bytes.vocab_size == 600 and eot == 599
    assert eot not in trained_bytes.encode("a<|endoftext|>b")
    assert trained_bytes.encode("a<|endoftext|>b", special=True) == trained_bytes.encode("a") + [eot] + trained_bytes.encode("b")
    # merges really compress: the common words are single tokens
    assert len(trained_bytes.encode(" the")) == 1


def test_bytes_encoding_applies_lowest_rank_first():
    # merges: (a,b)->256 rank 0, (b,c)->257 rank 1: "abc" -> [256, 'c'], never [a, 257]
    tok = ByteTokenizer([(97, 98, 256), (98, 99, 257)], pattern=r".+")
    assert tok.encode("abc") == [256, 99] and tok.encode("bc") == [257]
    rng = random.Random(0)
    s = "".join(rng.choice("abc") for _ in range(50))
    assert tok.decode(tok.encode(s)) == s


def test_parallel_word_counts_equal_serial(monkeypatch):
    import bpe.sentencepiece_trainer as train
    corpus = fixture_path("tinystories-valid-100.txt")
    split = train.SentencePieceWords(add_dummy_prefix=True, remove_extra_whitespaces=False)
    serial = train.count_words([corpus], split)
    monkeypatch.setattr(train, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(train, "BLOCK_BYTES", 10_000)  # many blocks, spread over the worker processes
    assert train.count_words([corpus], split) == serial
    assert serial["▁the"] > 100 and sum(serial.values()) > 10_000
