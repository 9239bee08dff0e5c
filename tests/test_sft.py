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
