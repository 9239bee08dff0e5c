"""What a new user hit (issue 17), each a regression test: pipes and full disks, one Ctrl-C status,
temperatures that cannot work, prompts that are not UTF-8, empty prompts and models, unrecognised files."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, assert_clean_error, smollm2_gguf_path

ENV = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")


def generate(*args, stdin=b"", shell_tail=None):
    cmd = [sys.executable, str(ROOT / "scripts" / "generate.py"), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, env=ENV)


def piped(cmd: str):
    """Run through a shell pipe; (exit status of our command, its stderr)."""
    res = subprocess.run(["bash", "-c", cmd + "; echo \"rc=${PIPESTATUS[0]}\" >&2"], capture_output=True,
                         text=True, env=ENV)
    return res


def test_a_closed_pipe_is_silent():
    gguf = smollm2_gguf_path()
    py = f"{sys.executable} {ROOT / 'scripts' / 'generate.py'} --model {gguf}"
    for cmd in (f"{py} --prompt 'Once upon a time' --max-new-tokens 60 | head -c 20 > /dev/null",
                f"{py} --inspect --prompt 'The capital of France is' | head -2 > /dev/null"):
        res = piped(cmd)
        lines = [l for l in res.stderr.splitlines() if not l.startswith("rc=")]
        assert not [l for l in lines if "error" in l or "Traceback" in l or "Exception" in l], res.stderr
        assert "rc=141" in res.stderr, res.stderr


def test_a_full_disk_names_stdout():
    res = piped(f"{sys.executable} {ROOT / 'scripts' / 'generate.py'} --model {smollm2_gguf_path()} "
                "--prompt Once --max-new-tokens 3 --temperature 0 > /dev/full")
    assert "error: stdout: No space left on device" in res.stderr and "rc=2" in res.stderr, res.stderr


def test_temperatures_that_cannot_work_are_one_line():
    for t in ("1e-310", "5e-324", "inf", "nan", "-1"):
        assert_clean_error(subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model",
                                           str(smollm2_gguf_path()), "--prompt", "x", "--temperature", t],
                                          capture_output=True, text=True, env=ENV), "temperature", "0.001")


def test_prompt_that_is_not_utf8_warns_once():
    res = generate("--model", str(smollm2_gguf_path()), "--max-new-tokens", "1", "--temperature", "0",
                   stdin=b"caf\xe9 au lait")
    err = res.stderr.decode()
    assert res.returncode == 0 and err.count("not valid UTF-8") == 1 and "U+FFFD" in err


def test_empty_prompt_and_model_are_the_same_error_everywhere():
    gguf = str(smollm2_gguf_path())
    for args in (("--prompt", ""), ("--chat", "--prompt", ""), ("--chat",)):
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", gguf, *args],
                             input="", capture_output=True, text=True, env=ENV)
        assert_clean_error(res, "the prompt is empty")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", "", "--prompt", "x"],
                         capture_output=True, text=True, env=ENV)
    assert_clean_error(res, "--model is empty")


def test_unrecognised_model_files_get_one_message_listing_the_kinds(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01 not a model")
    messages = []
    for path in ("/dev/null", str(garbage)):
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", path, "--prompt", "x"],
                             capture_output=True, text=True, env=ENV)
        assert_clean_error(res, "none of the accepted kinds", "GGUF", "config.json")
        messages.append(res.stderr.replace(path, "PATH"))
    assert messages[0] == messages[1]


def test_developer_scripts_refuse_bad_options_in_one_line(tmp_path):
    cases = [("fuzz.py", "--format", "nope"), ("fuzz.py", "--keep", "/proc/xx"), ("fuzz.py", "--cases", "-1"),
             ("fuzz.py", "--cases", "0"), ("bench_model.py", "--dir", "/proc/xx"), ("bench_model.py", "--tokens", "-1"),
             ("bench_tokenizer.py", "--repeat", "0"), ("bench_train.py", "--pairs", "0"),
             ("bench_serve.py", "--tokens", "0"), ("serve.py", "--port", "70000"), ("serve.py", "--timeout", "0"),
             ("bench_eval.py", "--llama-perplexity", "/nonexistent"), ("evaluate.py", "--chunks", "0", "--model", "m", "--task",
                                                                       "perplexity", "--data", "x")]
    for script, *args in cases:
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                             env=ENV)
        assert_clean_error(res, args[0])


def test_make_fixtures_has_help():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_fixtures.py"), "--help"], capture_output=True,
                         text=True, env=ENV)
    assert res.returncode == 0 and "transformers" in res.stdout


def test_fuzz_help_names_the_formats():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--help"], capture_output=True,
                         text=True, env=ENV)
    assert "gguf" in res.stdout and "safetensors-index" in res.stdout


def bpe_train(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "bpe", "train", "--input", str(ROOT / "scripts" / "data" / "toy_corpus.txt"),
                           "--vocab-size", "400", *args], capture_output=True, text=True, env=ENV, cwd=tmp_path)


def test_bpe_train_writes_all_or_nothing(tmp_path):
    (tmp_path / "d" / "p.vocab").mkdir(parents=True)
    assert_clean_error(bpe_train(tmp_path, "--model-prefix", "d/p"), "d/p.vocab", "nothing was written")
    (tmp_path / "d" / "r.tokenizer.json").mkdir()
    assert_clean_error(bpe_train(tmp_path, "--model-prefix", "d/r", "--style", "bytes", "--tokenizer-json"),
                       "r.tokenizer.json")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["p.vocab", "r.tokenizer.json"]   # nothing else
    assert_clean_error(bpe_train(tmp_path, "--model-prefix", "d/"), "names a folder")
    res = subprocess.run([sys.executable, "-m", "bpe", "train", "--input", str(tmp_path / "d"), "--vocab-size", "400",
                          "--model-prefix", "x"], capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert_clean_error(res, "is a directory")


def test_bpe_train_refuses_the_other_styles_options_and_takes_pattern_names(tmp_path):
    for args, word in ((["--pattern", "gpt2"], "--pattern"), (["--special-tokens", "<a>"], "--special-tokens"),
                       (["--style", "bytes", "--character-coverage", "0.9"], "--character-coverage"),
                       (["--style", "bytes", "--remove-extra-whitespaces"], "--remove-extra-whitespaces")):
        assert_clean_error(bpe_train(tmp_path, "--model-prefix", "x", *args), word)
    assert bpe_train(tmp_path, "--model-prefix", "y", "--style", "bytes", "--pattern", "gpt2").returncode == 0
    from bpe.patterns import GPT2
    assert json_pattern(tmp_path / "y.model") == GPT2


def json_pattern(path):
    import json
    return json.loads(path.read_text().splitlines()[1][len("pattern "):])


def test_expr_minus_is_like_plus_and_operands_are_required():
    from model.inspect_report import parse_arithmetic
    assert parse_arithmetic("Paris-France+Italy") == parse_arithmetic("Paris - France + Italy") == \
        [(1, "Paris"), (-1, "France"), (1, "Italy")]
    assert parse_arithmetic("Paris+Italy") == [(1, "Paris"), (1, "Italy")]
    import pytest
    for bad in ("- Paris", "+ -", "Paris +", "Paris - - France", ""):
        with pytest.raises(ValueError, match="operator"):
            parse_arithmetic(bad)


def test_train_bpe_usage_matches_what_it_does():
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "scripts" / "train_bpe.py"), *a],  # noqa: E731
                                    capture_output=True, text=True, env=ENV)
    assert "[--input FILE" in run("--help").stdout           # optional, as it is
    plain, verbose = run(), run("--verbose")
    assert plain.returncode == verbose.returncode == 0 and len(verbose.stdout) > len(plain.stdout)
    assert_clean_error(run("--vocab-size", "10"), "--vocab-size needs --input")


def test_list_architectures_says_what_readme_says():
    from model.family import FAMILY, REFUSED
    text = (ROOT / "README.md").read_text(encoding="utf-8").split("The family, through one forward pass")[1]
    rows = [line for line in text.splitlines() if line.startswith("| ")][2:2 + len(FAMILY)]
    readme = [tuple(c.strip().replace("`", "") for c in r.strip("|").split("|")) for r in rows]
    assert readme == [tuple(row) for row in FAMILY]
    refused = text[text.index("Refused by name:"):].split("\n\n")[0].replace("\n", " ")
    assert refused == f"Refused by name: {REFUSED}."
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--list-architectures"],
                         capture_output=True, text=True, env=ENV).stdout
    assert all(row[0] in out and row[2] in out for row in FAMILY) and REFUSED in out


def test_inspect_has_a_key_one_legend_readable_pieces_and_a_sane_show_top(tmp_path):
    gguf = str(smollm2_gguf_path())
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", gguf, "--inspect",
                          "--prompt", "The capital – of France is", "--temperature", "0", "--max-new-tokens", "1",
                          "--show-top", "1000000000"], capture_output=True, text=True, env=ENV)
    out = res.stdout
    assert res.returncode == 0 and out.count("key: ") == 1 and out.count("positions: ") == 1
    assert "ĠâĢĵ ' –'" in out                                   # the byte-level piece, and its text
    assert "the 49152 most likely" in out and "1000000000" not in out
    assert "Logit lens" in out and out.count("layer 29") >= 2
    assert_clean_error(subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", gguf,
                                       "--inspect", "--prompt", "x", "--png-dir", str(ROOT / "README.md")],
                                      capture_output=True, text=True, env=ENV), "is not a directory")


def test_color_keeps_a_character_split_across_tokens_together():
    from bpe.cli import COLORS, render_tokens
    from bpe.files import load_tokenizer
    tok = load_tokenizer(smollm2_gguf_path())
    ids = tok.encode("party 🎉 time")
    assert [tok.id_to_piece(i) for i in ids][1] == "ĠðŁ"        # the space and half the emoji, one token
    assert render_tokens(tok, ids, color=False) == "party| 🎉| time"
    assert all("30;" in c for c in COLORS)                      # black text on each light background
    res = subprocess.run([sys.executable, "-m", "bpe", "--help"], capture_output=True, text=True, env=ENV)
    assert "tokenizer.json" in res.stdout and "python -m bpe encode" in res.stdout


@pytest.mark.slow
def test_interactive_chat_in_a_real_terminal(tmp_path):
    """tmux runs the chat: typing during an answer is not echoed into it, --quiet drops the stats, and a
    blank line does not go into the history (Up recalls the last real message)."""
    import shutil
    import time
    from conftest import needed
    if shutil.which("tmux") is None:
        needed("tmux is not installed: apt-get install -y tmux")
    session = f"t{os.getpid()}"
    cmd = (f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} scripts/generate.py --model {smollm2_gguf_path()} "
           f"--chat --temperature 0 --quiet --max-new-tokens 40; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "150", "-y", "40", cmd], check=True)
    screen = lambda: subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True,  # noqa: E731
                                    text=True).stdout
    keys = lambda *k: subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)  # noqa: E731
    try:
        deadline = time.time() + 60
        while "Ctrl-D ends" not in screen() and time.time() < deadline:
            time.sleep(0.2)
        keys("   ", "Enter")
        keys("What is the capital of France?", "Enter")
        time.sleep(0.3)
        keys("xyzzy")
        deadline = time.time() + 60
        while screen().count("> ") < 3 and time.time() < deadline:
            time.sleep(0.2)
        keys("Up")
        time.sleep(0.5)
        shown = screen()
        assert "Paris" in shown and "xyzzy" not in shown, shown
        assert "eval time" not in shown and "prompt eval" not in shown
        assert shown.rstrip().splitlines()[-1].startswith("> What is the capital of France?"), shown
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_the_prompt_may_come_as_an_argument_or_after_p():
    """`generate.py "text"` and `-p "text"` (llama.cpp's spelling) are --prompt; twice is refused."""
    common = ("--model", str(smollm2_gguf_path()), "--temperature", "0", "--max-new-tokens", "6", "--quiet")
    by_name = generate(*common, "--prompt", "Once upon a time")
    assert by_name.returncode == 0 and by_name.stdout.startswith(b"Once upon a time")
    for given in (("Once upon a time",), ("-p", "Once upon a time")):
        res = generate(*common, *given)
        assert res.returncode == 0 and res.stdout == by_name.stdout
    twice = generate(*common, "--prompt", "a", "b")
    assert twice.returncode == 2 and twice.stderr.decode().count("\n") == 1 and b"once" in twice.stderr


def test_a_benchmark_without_its_optional_package_names_the_extra():
    """bench_train.py --bench step needs torch: without it, one line naming the extra, exit 2 (issue 26)."""
    code = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = ['bench_train.py', '--bench', 'step']; "
            f"runpy.run_path({str(ROOT / 'scripts' / 'bench_train.py')!r}, run_name='__main__')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert_clean_error(res, "torch", ".[oracle]")


def test_divergence_names_what_became_non_finite(tmp_path):
    """A learning rate of 1e30: the gradients overflow while the loss is still finite. The error says the
    gradient norm became inf, at which step, in one line with no NumPy warnings (issue 26)."""
    from conftest import fixture_path
    corpus = tmp_path / "c.txt"
    corpus.write_text(fixture_path("tinyshakespeare.txt").read_text()[:20000])
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), "--input", str(corpus),
                          "--out", str(tmp_path / "run"), "--steps", "5", "--lr", "1e30", "--weight-decay", "0",
                          "--eval-every", "100", "--eval-windows", "2", "--warmup", "0"], capture_output=True, text=True, env=ENV)
    assert res.returncode == 2, res.stderr
    assert "Warning" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    line = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(line) == 1 and "gradient norm became" in line[0] and "at step" in line[0], res.stderr


def test_a_weights_file_or_a_file_as_out_say_what_to_give_instead(tmp_path):
    """--model run/model.safetensors suggests the run's folder; --out FILE --force says it is a file (issue 26)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model",
                          str(folder / "model.safetensors"), "--prompt", "x"], capture_output=True, text=True, env=ENV)
    assert_clean_error(res, "none of the accepted kinds", f"give its folder: {folder}")
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world " * 500)
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), "--input", str(corpus), "--out",
                          str(target), "--force", "--steps", "1"], capture_output=True, text=True, env=ENV)
    assert_clean_error(res, "--out", "is a file, not a run folder")
    assert target.read_text() == "mine"
