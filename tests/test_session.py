"""The interactive chat loop and streaming (model/session.py), driven with scripted input."""
import numpy as np
import pytest

from bpe import SentencePieceTokenizer
from model.chat import encode_chat
from model.config import LlamaConfig
from model.generate import Stats
from model.llama import Llama
from model.session import GenerationSettings, chat_loop, fit_conversation
from model.weights import expected_shapes


def tiny_model(context: int, vocab: int = 32000, seed: int = 0) -> Llama:
    cfg = LlamaConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=8, vocab_size=vocab, max_position_embeddings=context,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, eos_token_id=2)
    rng = np.random.default_rng(seed)
    weights = {n: (rng.standard_normal(s) * 0.5 + n.endswith("norm.weight")).astype(np.float32)
               for n, s in expected_shapes(cfg).items()}
    weights["lm_head.weight"][:, 2] = 0  # EOS never wins, so every answer has text
    weights["lm_head.weight"][2] = -1
    return Llama(cfg, weights)


@pytest.fixture(scope="module")
def tok(llama_model_path):
    return SentencePieceTokenizer.load(llama_model_path)


class Script:
    """input() replacement: returns the lines, then raises EOFError; records what encode saw."""

    def __init__(self, lines):
        self.lines = list(lines)

    def __call__(self, prompt):
        if not self.lines:
            raise EOFError
        line = self.lines.pop(0)
        if isinstance(line, BaseException):
            raise line
        return line


def run_chat(model, tok, lines, *, settings=GenerationSettings(max_new_tokens=6, temperature=0), write=None, system=None):
    seen, out, err = [], [], []

    def encode(messages):
        seen.append([dict(m) for m in messages])
        return encode_chat(tok, messages)

    class Err:
        def write(self, s):
            err.append(s)

        def flush(self):
            pass
    code = chat_loop(model, tok, encode, settings, np.random.default_rng(0), system=system,
                     read=Script(lines), write=write or out.append, err=Err())
    return code, seen, "".join(out), "".join(err)


def test_chat_drops_oldest_turns_when_the_context_fills(tok):
    model = tiny_model(context=80)
    lines = [f"Message number {k}: tell me something about the weather today." for k in range(6)]
    code, seen, out, err = run_chat(model, tok, lines, system="Be brief.")
    assert code == 0
    assert "dropped the" in err and "Traceback" not in err
    assert out.count("\n") == 6  # every message was answered
    last = seen[-1]
    assert last[0] == {"role": "system", "content": "Be brief."}  # the system prompt is kept
    assert last[-1]["content"] == lines[-1] and last[1]["role"] == "user"
    assert len(encode_chat(tok, last)) <= 80


def test_a_message_too_long_for_the_context_is_refused_and_the_chat_goes_on(tok):
    model = tiny_model(context=40)
    code, seen, out, err = run_chat(model, tok, ["word " * 60, "Hi"])
    assert code == 0 and "try a shorter message" in err
    assert out.count("\n") == 1  # "Hi" was answered


def test_ctrl_c_mid_answer_keeps_the_printed_text_in_the_history(tok):
    model = tiny_model(context=200)
    printed = []

    def write(text):
        printed.append(text)
        if len("".join(printed).strip()) > 0 and len(printed) == 3:
            raise KeyboardInterrupt

    code, seen, _, err = run_chat(model, tok, ["Hello there", "And again"], write=write)
    assert code == 0 and "(stopped)" in err
    first_answer = "".join(printed).split("\n")[0]
    assert first_answer.strip()
    assistant = [m for m in seen[-1] if m["role"] == "assistant"]
    assert assistant and assistant[0]["content"] == first_answer.strip()


def test_ctrl_c_and_empty_lines_at_the_prompt_do_not_end_the_chat(tok):
    model = tiny_model(context=200)
    code, seen, out, err = run_chat(model, tok, ["", KeyboardInterrupt(), "   ", "Hi"])
    assert code == 0 and out.count("\n") == 1 and len(seen) == 1


def test_load_time_is_reported_once(tok):
    model = tiny_model(context=200)
    seen = []
    chat_loop(model, tok, lambda m: encode_chat(tok, m), GenerationSettings(max_new_tokens=3, temperature=0),
              np.random.default_rng(0), load_s=1.5, read=Script(["a", "b"]), write=lambda s: None,
              err=type("E", (), {"write": lambda self, s: seen.append(s), "flush": lambda self: None})())
    assert "".join(seen).count("load time") == 1


def test_fit_conversation_keeps_whole_turns():
    def encode(messages):
        return [0] * (10 * len(messages))
    msgs = [{"role": "system", "content": "s"}] + [{"role": r, "content": "x"} for r in ["user", "assistant"] * 3]
    msgs.append({"role": "user", "content": "last"})
    ids, dropped = fit_conversation(encode, msgs, context=50, reserve=5)
    assert dropped == 4 and len(ids) == 40  # system + the last user/assistant pair + the new message


def test_eval_stats_count_forward_passes(tok):
    from model.generate import generate
    model = tiny_model(context=64)
    stats = Stats()
    out = list(generate(model, [1, 5, 6], max_new_tokens=1, rng=np.random.default_rng(0), stats=stats))
    assert len(out) == 1 and stats.decode_runs == 0 and stats.decode_s == 0
    assert "0 runs" in stats.report() and "inf" not in stats.report()
    stats = Stats()
    list(generate(model, [1, 5, 6], max_new_tokens=4, rng=np.random.default_rng(0), stats=stats))
    assert stats.generated_tokens == 4 and stats.decode_runs == 3 and stats.prompt_tokens == 3


def test_chat_commands_are_not_sent_to_the_model(tok):
    """/help lists the commands, /reset forgets the conversation (not the system prompt), /exit ends it;
    an answer cut at the token limit says so (issue 26)."""
    model = tiny_model(context=200)
    code, seen, out, err = run_chat(model, tok, ["First question", "/help", "/reset", "Second question", "/exit",
                                                 "never read"], system="Be brief.")
    assert code == 0 and "/reset" in err and "a new conversation" in err
    assert all(m["content"] not in ("/help", "/reset", "/exit") for conv in seen for m in conv)
    assert seen[-1] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Second question"}]
    assert not any(m["content"] == "never read" for conv in seen for m in conv)
    assert "token limit" in err


def test_raw_text_slides_the_window_past_a_short_context():
    """A model with a 16-token context continues a raw prompt past it, as nanoGPT's sampler does: each
    time the context fills, it goes on from the last 12 tokens; the stats say so (issue 26)."""
    from model.generate import Stats, generate
    model = tiny_model(context=16)
    prompt = [5, 6, 7, 8]
    stats = Stats()
    out = list(generate(model, prompt, max_new_tokens=40, rng=np.random.default_rng(0), stats=stats, slide=True))
    assert len(out) == 40 and stats.slides >= 3 and stats.window == 12 and "sliding window" in stats.report()
    history = prompt + out
    # after a slide, the next token is what a fresh pass over the window predicts (greedy)
    full = 16 - len(prompt)                     # out[12] is chosen when the cache holds 16 positions
    window = history[:len(prompt) + full + 1][-12:]
    model.new_cache(16)
    assert int(np.argmax(model.forward(window))) == out[full + 1]
    stopped = Stats()
    assert len(list(generate(model, prompt, max_new_tokens=40, rng=np.random.default_rng(0), stats=stopped))) == 13
    assert stopped.stopped_at_context


def test_a_long_message_shows_its_reading_progress_on_a_terminal(tok):
    """A 6.9k-token paste was read for minutes with nothing on screen: a terminal now sees the count."""
    model = tiny_model(context=3000)
    message = "the weather is nice today and tomorrow " * 150                 # about 1,200 tokens
    total = len(encode_chat(tok, [{"role": "user", "content": message}]))
    assert total > 1024
    err = []

    class Tty:
        def write(self, s):
            err.append(s)

        def flush(self):
            pass

        def isatty(self):
            return True
    out = []
    chat_loop(model, tok, lambda m: encode_chat(tok, m), GenerationSettings(max_new_tokens=4, temperature=0),
              np.random.default_rng(0), read=Script([message]), write=out.append, err=Tty(), quiet=True)
    shown = "".join(err)
    assert f"(reading: 512 / {total:,} tokens" in shown and f"(reading: 1,024 / {total:,} tokens" in shown
    _, _, plain, plain_err = run_chat(model, tok, [message], settings=GenerationSettings(max_new_tokens=4, temperature=0))
    assert "reading:" not in plain_err and "".join(out) == plain          # the same answer, read in chunks


def test_prefill_in_chunks_gives_the_whole_prompts_logits():
    from model.generate import prefill
    model = tiny_model(context=1400, vocab=300)
    ids = list(np.random.default_rng(1).integers(0, 300, 1300))
    model.new_cache(1400)
    whole = model.forward(ids)
    seen = []
    model.new_cache(1400)
    chunked = prefill(model, ids, lambda done, total: seen.append((done, total)))
    assert seen == [(512, 1300), (1024, 1300), (1300, 1300)]
    np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-4)


def test_keys_typed_during_an_answer_are_reported_as_dropped():
    import os
    from model.session import NoEcho
    master, slave = os.openpty()
    stream = os.fdopen(slave, "r")
    try:
        with NoEcho(stream) as keys:
            os.write(master, b"hello\n")
            import time
            time.sleep(0.1)
        assert keys.dropped
        with NoEcho(stream) as quiet:
            pass
        assert not quiet.dropped
    finally:
        stream.close()
        os.close(master)
