"""Instruction tuning (issue 25): the loss counts the assistant's tokens and its end-of-turn token only,
checked against HF tokenizers' ids of the answer; bad examples are named; a short run learns."""
import json
import os
import subprocess
import sys

import pytest

from model.loss import IGNORE
from model.train.sft import PLAIN_TEMPLATE, chat_for_tuning, conversation, encode, read_conversations

from conftest import ROOT, assert_clean_error, fixture_path, smollm2_gguf_path, smollm2_tokenizer_json


@pytest.fixture(scope="module")
def smollm2():
    from model.formats.loader import load
    return load(str(smollm2_gguf_path()))


@pytest.mark.oracle
def test_only_the_answer_and_its_end_of_turn_are_learned(smollm2):
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer.from_file(str(smollm2_tokenizer_json()))
    messages = conversation({"instruction": "Name a color.", "input": "", "output": "Blue is a color."}, "x")
    ids, targets = encode(smollm2.chat, smollm2.tokenizer, messages)
    learned = [t for t in targets if t != IGNORE]
    im_end = hf.token_to_id("<|im_end|>")
    assert learned == hf.encode("Blue is a color.", add_special_tokens=False).ids + [im_end]
    assert len(ids) == len(targets) and targets[-1] == IGNORE        # the "\n" after <|im_end|> is not learned
    # the learned tokens are the last ones before that newline, each predicted from the position before it
    k = len(targets) - 1 - len(learned)
    assert targets[k:-1] == learned and ids[k + 1:] == learned


def test_a_model_without_a_template_gets_the_plain_format(tmp_path):
    from bpe.files import load_tokenizer
    from model.chat import NoChat
    tok = load_tokenizer(fixture_path("llama2-tokenizer.model"))
    chat = chat_for_tuning(NoChat(), tok)
    assert chat.text == PLAIN_TEMPLATE
    messages = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]
    assert chat.render(messages) == "### Instruction:\nSay hi.\n\n### Response:\nHi.</s>\n\n"
    ids, targets = encode(chat, tok, messages)
    learned = [t for t in targets if t != IGNORE]
    assert learned[-1] == tok.eos_id and tok.decode(learned[:-1]) == "Hi."


def test_malformed_examples_are_named(tmp_path):
    cases = [('[{"instruction": "a", "input": "", "output": ""}]', "example 0", "'output'"),
             ('[{"instruction": "a", "output": "b"}, {"output": "c"}]', "example 1", "'instruction'"),
             ('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n', "2", "not JSON"),
             ('[]', "at least one", "")]
    for k, (text, *words) in enumerate(cases):
        path = tmp_path / f"bad{k}.json"
        path.write_text(text)
        with pytest.raises(ValueError) as e:
            read_conversations(path)
        assert all(w in str(e.value) for w in words), str(e.value)


def test_sft_cli_refuses_bad_input_in_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), *a],  # noqa: E731
                                    capture_output=True, text=True, env=env)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"instruction": "a", "input": "", "output": ""}]')
    assert_clean_error(run("--sft", str(bad), "--out", str(tmp_path / "o")), "--init")
    assert_clean_error(run("--init", "smollm2", "--sft", str(bad), "--out", str(tmp_path / "o")), "example 0", "output")
    assert not (tmp_path / "o").exists()                           # nothing half-written


def test_lora_cli_refuses_bad_input_in_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), *a],  # noqa: E731
                                    capture_output=True, text=True, env=env)
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"instruction": f"Say {k}.", "input": "", "output": f"{k}."} for k in range(8)]))
    out = tmp_path / "o"
    assert_clean_error(run("--init", "smollm2", "--sft", str(data), "--lora", "0", "--out", str(out)), "--lora 0")
    assert_clean_error(run("--init", "smollm2", "--sft", str(data), "--lora", "4", "--lora-targets", "q_proj,wq",
                           "--out", str(out)), "--lora-targets", "wq")
    assert_clean_error(run("--input", str(data), "--lora", "4", "--out", str(out)), "--lora", "--init")
    assert not out.exists()


def test_dpo_cli_refuses_bad_input_in_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), *a],  # noqa: E731
                                    capture_output=True, text=True, env=env)
    out = tmp_path / "o"
    nopairs = tmp_path / "sft.json"
    nopairs.write_text(json.dumps([{"instruction": "Say hi.", "input": "", "output": "Hi."}] * 3))
    assert_clean_error(run("--init", "smollm2", "--dpo", str(nopairs), "--out", str(out)), "example 0", "chosen")
    assert_clean_error(run("--dpo", str(nopairs), "--out", str(out)), "--dpo", "--init")
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"instruction": "Say hi.", "input": "", "chosen": "Hi.", "rejected": "No."}] * 3))
    assert_clean_error(run("--init", "smollm2", "--dpo", str(pairs), "--beta", "0", "--out", str(out)), "--beta 0")
    assert not out.exists()


@pytest.mark.slow
def test_readme_assistant_commands_run(tmp_path):
    """README's SFT -> DPO -> chat commands, shortened by options given after them; the chat uses the
    template the model was tuned with."""
    import shlex
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Make it an assistant")[1]
    lines = section.split("```bash\n")[1].split("```")[0].strip().splitlines()
    shorter = {"train_model.py": ["--steps", "2", "--batch", "2", "--context", "160", "--eval-windows", "2"],
               "generate.py": ["--max-new-tokens", "3"]}
    fixtures = str(fixture_path("tinyshakespeare.txt").parent) + "/"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for line in lines:
        words = shlex.split(line)
        script = os.path.basename(words[1])
        words = [sys.executable, str(ROOT / words[1])] + [w.replace("../shared/fixtures/", fixtures) for w in words[2:]]
        res = subprocess.run(words + shorter[script], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert res.returncode == 0, (line, res.stderr[-2000:])
    assert (tmp_path / "runs" / "dpo" / "adapter" / "adapter_model.safetensors").is_file()
    log = [json.loads(l) for l in (tmp_path / "runs" / "dpo" / "log.jsonl").read_text().splitlines()]
    assert "val_accuracy" in log[-1] and "val_margin" in log[-1]


class StopAt:
    """A progress display that presses Ctrl-C (SIGINT to this process) once the run reaches `step`."""

    def __init__(self, step):
        self.at = step

    def step(self, step, *args):
        if step == self.at:
            import signal
            os.kill(os.getpid(), signal.SIGINT)

    def say(self, text):
        pass


@pytest.mark.parametrize("kind", ["sft-lora", "dpo"])
def test_lora_and_dpo_runs_resume_bit_for_bit(tmp_path, kind):
    """A LoRA run and a DPO run stopped by Ctrl-C at step 3 and resumed end where an unbroken run ends:
    the adapters, the merged weights and the optimizer's moments bit for bit (DPO: the saved reference)."""
    import numpy as np
    from model.train.recipe import TrainSettings
    from testkit.checkpoints import write_checkpoint
    from model.train.loop import Interrupted, train
    from model.train.runs import new_run, resume
    from model.weights import load_tensors
    base = write_checkpoint(tmp_path / "base", "gqa", dtype="F32", tokenizer=fixture_path("llama2-tokenizer.model"))
    data = tmp_path / "data.json"
    rows = [{"instruction": f"Name {k} colours.", "input": "" if k % 2 else "red", "output": f"Red and {k} more.",
             "chosen": f"Happily: red and {k}.", "rejected": "No."} for k in range(12)]
    data.write_text(json.dumps(rows))
    settings = TrainSettings(steps=6, batch=2, context=64, lr=1e-2, min_lr=1e-3, warmup=1, eval_every=100,
                             eval_windows=2)
    options = dict(sft=str(data), lora=4) if kind == "sft-lora" else dict(dpo=str(data), beta=0.5)
    outs = {}
    for name in ("whole", "cut"):
        run = new_run(None, tmp_path / name, settings, init=str(base), notice=lambda *a: None, **options)
        if name == "cut":
            with pytest.raises(Interrupted):
                train(run, progress=StopAt(3))
            assert json.loads((tmp_path / name / "trainer_state.json").read_text())["step"] == 3
            run = resume(tmp_path / name, {}, notice=lambda *a: None)
            assert run.step == 3 and (run.lora is not None) == (kind == "sft-lora")
        train(run, progress=StopAt(-1))
        outs[name] = tmp_path / name
    files = ["model.safetensors", "optimizer.safetensors"] + (["adapter/adapter_model.safetensors"]
                                                            if kind == "sft-lora" else [])
    for f in files:
        a, b = load_tensors(outs["whole"] / f), load_tensors(outs["cut"] / f)
        assert a.keys() == b.keys()
        for n in a:
            np.testing.assert_array_equal(a[n], b[n], err_msg=f"{f}: {n}")
    moved = load_tensors(outs["whole"] / "model.safetensors")
    start = load_tensors(base / "model.safetensors")
    assert any(not np.array_equal(moved[n], start[n]) for n in start)      # the run did train
