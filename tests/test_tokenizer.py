"""The SentencePiece tokenizer against SentencePiece itself (the oracle), plus hand-derived cases."""
import pytest
from hypothesis import given, settings, strategies as st

from bpe.files import load_tokenizer
from bpe.sentencepiece import SentencePieceTokenizer, decode_bytes

from conftest import fixture_path

spm = pytest.importorskip("sentencepiece")

# (file we load, the .model SentencePiece loads as the oracle)
MODELS = [("llama2-tokenizer.model", "llama2-tokenizer.model"), ("tok512.model", "tok512.model"),
          ("llama2-tokenizer.json", "llama2-tokenizer.model")]


@pytest.fixture(scope="module", params=MODELS, ids=[m[0] for m in MODELS])
def pair(request):
    ours, ref = (fixture_path(name) for name in request.param)
    return load_tokenizer(ours), spm.SentencePieceProcessor(model_file=str(ref))


@pytest.fixture(scope="module")
def hf():
    tokenizers = pytest.importorskip("tokenizers")
    return tokenizers.Tokenizer.from_file(str(fixture_path("llama2-tokenizer.json")))


@pytest.fixture(scope="module")
def llama(llama_model_path):
    return SentencePieceTokenizer.load(llama_model_path)


# Text that stresses the traps: whitespace runs, digits, emoji, astral and control characters.
TRICKY = st.sampled_from([" ", "  ", "\t", "\n", "\r", "\x00", "\x7f", "0", "7", "😀", "𝔘", "é", "e\u0301",
                          "日本", "▁", "<s>", "</s>", "<unk>", "\ufffd", "\u200b", "\u2581\u2581", "a", "the"])
TEXT = st.one_of(st.text(), st.lists(st.one_of(TRICKY, st.text(max_size=3))).map("".join))


def test_known_fact(llama):
    # from the fixtures README (SentencePiece 0.2)
    assert llama.encode("I believe the meaning of life is") == [306, 4658, 278, 6593, 310, 2834, 338]
    assert llama.encode("I believe the meaning of life is", bos=True)[0] == 1


def test_hand_derived_traps(llama):
    # whitespace-only pieces score -1e9: they merge last, so the second space stays alone
    assert llama.encode_pieces("Hello  world") == ["▁Hello", "▁", "▁world"]
    assert llama.encode(" ") == [259] and llama.encode(" a")[0] == 29871 and llama.encode("\n")[0] == 29871 and llama.encode("1")[0] == 29871
    assert llama.encode("") == [] and llama.decode([]) == ""
    # byte fallback: one <0xXX> per UTF-8 byte, id = byte + 3
    assert llama.encode("\x00") == [29871, 3]
    assert llama.decode([3 + 0xE2, 3 + 0x82, 3 + 0xAC]) == "€"
    # typed special-token text is ordinary text unless asked for
    assert 2 not in llama.encode("</s>") and llama.encode_with_special("a</s>b") == llama.encode("a") + [2] + llama.encode("b")
    assert llama.encode("x", bos=True, eos=True) == [1] + llama.encode("x") + [2]


def test_decode_bytes_replaces_each_invalid_byte():
    assert decode_bytes(b"a\xe2\x82\xacb") == "a€b"
    assert decode_bytes(b"\xe2\x82") == "\ufffd\ufffd"        # truncated: one per byte, not one per run
    assert decode_bytes(b"\xed\xa0\x80") == "\ufffd" * 3      # a surrogate is not valid UTF-8
    assert decode_bytes(b"\xc0\xaf") == "\ufffd" * 2          # overlong


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_encode_matches_sentencepiece(pair, text):
    ours, ref = pair
    assert ours.encode(text) == ref.encode(text)
    assert ours.decode(ref.encode(text)) == ref.decode(ref.encode(text))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_ids_decode_like_sentencepiece(pair, hf, data):
    """A .model decodes as spm_decode; a tokenizer.json as HF's decoder (the oracle for that file)."""
    ours, ref = pair
    n = ours.vocab_size
    ids = data.draw(st.lists(st.one_of(st.integers(0, n - 1), st.integers(3, 258), st.integers(0, 5)), max_size=40))
    if ours.hf_decoding is None:
        assert ours.decode(ids) == ref.decode(ids)
    else:
        assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_stream_decoder_joins_to_decode(pair, data):
    ours, _ = pair
    ids = data.draw(st.lists(st.one_of(st.integers(0, ours.vocab_size - 1), st.integers(3, 258)), max_size=40))
    stream = ours.stream_decoder()
    parts = [stream.feed(i) for i in ids] + [stream.flush()]
    assert "".join(parts) == ours.decode(ids)


def test_stream_decoder_holds_back_partial_characters(llama):
    stream = llama.stream_decoder()
    ids = llama.encode("a 😀")          # '😀' is four byte pieces in Llama's vocabulary
    out = [stream.feed(i) for i in ids]
    assert out[-4:-1] == ["", "", ""] and out[-1] == "😀"
    assert "".join(out) + stream.flush() == "a 😀"


def test_every_corpus_line_matches(pair):
    ours, ref = pair
    for name in ["tinyshakespeare.txt", "tinystories-valid-100.txt"]:
        lines = fixture_path(name).read_text(encoding="utf-8").splitlines()
        assert [ours.encode(s) for s in lines] == [ref.encode(s) for s in lines], name
        whole = "\n".join(lines[:2000])
        assert ours.encode(whole) == ref.encode(whole)


def test_out_of_range_id_is_a_clear_error(llama):
    with pytest.raises(ValueError, match="out of range"):
        llama.decode([32000])
    with pytest.raises(ValueError, match="out of range"):
        llama.decode([-1])


@pytest.mark.parametrize("text", ["pneumonoultramicroscopicsilicovolcanoconiosis" * 3, " " * 70 + "x" + " " * 33,
                                  "ab" * 40, "日本語のテキストを長く続けると一つの塊になります" * 2, "😀" * 30])
def test_long_chunks_use_the_heap_path_and_still_match(pair, text):
    ours, ref = pair
    assert len(text) > 24
    assert ours.encode(text) == ref.encode(text)


def test_short_and_heap_merge_agree(llama):
    for word in ["▁hello", "▁tokenization", "▁▁▁▁▁▁▁", "▁Xylophone", "▁déjà"]:
        short = [llama.piece_to_id(p) for p in llama._merge_short(list(word))]
        assert short == llama._merge_heap(word)


SPM_VARIANTS = {
    "nmt_nfkc": dict(),  # spm_train's defaults
    "nfkc_cf": dict(normalization_rule_name="nfkc_cf"),
    "user_defined": dict(user_defined_symbols=["<|user|>", "<|assistant|>", "ab"], byte_fallback=True,
                         normalization_rule_name="identity"),
    "whitespace_suffix": dict(treat_whitespace_as_suffix=True, remove_extra_whitespaces=False, byte_fallback=True),
    "no_split_by_whitespace": dict(split_by_whitespace=False, byte_fallback=True),
    "no_dummy_prefix": dict(add_dummy_prefix=False, remove_extra_whitespaces=False),
}


@pytest.fixture(scope="module", params=list(SPM_VARIANTS))
def spm_trained(request, tmp_path_factory):
    """SentencePiece BPE models as spm_train makes them: its defaults (nmt_nfkc) and other options."""
    corpus = fixture_path("tinystories-valid-100.txt")
    prefix = str(tmp_path_factory.mktemp("spm") / request.param)
    options = dict(input=str(corpus), model_prefix=prefix, vocab_size=600, model_type="bpe", minloglevel=2)
    options.update(SPM_VARIANTS[request.param])
    spm.SentencePieceTrainer.train(**options)
    return SentencePieceTokenizer.load(prefix + ".model"), spm.SentencePieceProcessor(model_file=prefix + ".model")


NFKC_TEXT = st.lists(st.one_of(TRICKY, st.sampled_from(["ﬁ", "Ⅸ", "①", "ｶ", "Å", "\u3000", "½", "\u00a0", "ſt",
                                                        "<|user|>", "<|assistant|>", "ab"]), st.text(max_size=3))).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), NFKC_TEXT))
def test_spm_trained_models_with_normalization_rules(spm_trained, text):
    ours, ref = spm_trained
    assert ours.encode(text) == ref.encode(text)
    assert ours.decode(ref.encode(text)) == ref.decode(ref.encode(text))


@pytest.fixture(scope="module", params=["first", "always"])
def metaspace_json(request, tmp_path_factory):
    """Llama-2's tokenizer.json as newer converters write it: no normalizer, a Metaspace
    pre-tokenizer (prepend "first" or "always") and a Metaspace decoder without ByteFallback."""
    import json
    tokenizers = pytest.importorskip("tokenizers")
    spec = json.loads(fixture_path("llama2-tokenizer.json").read_text(encoding="utf-8"))
    meta = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": request.param, "split": False}
    spec.update(normalizer=None, pre_tokenizer=meta, decoder=dict(meta))
    path = tmp_path_factory.mktemp("meta") / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return load_tokenizer(path), tokenizers.Tokenizer.from_file(str(path))


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.one_of(TRICKY, st.text(max_size=6)), max_size=8))
def test_metaspace_tokenizer_json_equals_hf(metaspace_json, parts):
    ours, hf = metaspace_json
    text = "".join(parts)
    ids = hf.encode(text, add_special_tokens=False).ids
    assert ours.encode(text, special=True) == ids
    assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)
