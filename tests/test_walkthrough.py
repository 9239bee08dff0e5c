"""The classic walkthrough, asserted from counts derived by hand from the sentence."""
import subprocess
import sys

import pytest

from bpe.walkthrough import SENTENCE, learn, letter_pair_counts, merge_in_text

from conftest import ROOT


def test_pair_counts_match_the_document():
    counts = list(letter_pair_counts(SENTENCE).items())
    # de: deploy, deep x3, models x3; in: train, Train, in, learning x3; ep: deploy, deep x3
    assert counts[:3] == [("de", 7), ("in", 6), ("ep", 4)]
    assert counts[3:15] == [(p, 3) for p in ["lo", "ee", "le", "ea", "ar", "rn", "ni", "ng", "mo", "od", "el", "ls"]]
    assert all(c <= 2 for _, c in counts[15:])


def test_merging_de_into_x():
    assert merge_in_text(SENTENCE, "de", "X") == (
        "FloydHub is the fastest way to build, train and Xploy Xep learning moXls. "
        "Build Xep learning moXls in the cloud. Train Xep learning moXls.")


def test_next_merges_follow_the_counts():
    steps = learn(SENTENCE, 3)
    assert steps[0] == ("d", "e", 7) and steps[1] == ("i", "n", 6)
    # after "de" merges, "ep" is gone (it became "de"+"e"+"p"): lo (3) is the first-seen pair at 3
    assert steps[2] == ("l", "o", 3)


def test_train_bpe_with_no_arguments_prints_the_walkthrough():
    out = subprocess.run([sys.executable, "scripts/train_bpe.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "de        7" in out and "in        6" in out and "ep        4" in out
    assert "train and Xploy Xep learning moXls." in out


@pytest.mark.parametrize("spelling", [["--vocab-size=320", "--model-prefix={p}"],
                                      ["--vocab_size", "320", "--model_prefix", "{p}"]])
def test_train_bpe_honours_every_option_spelling(tmp_path, spelling):
    prefix = str(tmp_path / "out" / "mine")
    (tmp_path / "out").mkdir()
    argv = [a.format(p=prefix) for a in spelling]
    res = subprocess.run([sys.executable, "scripts/train_bpe.py", "--input", "scripts/data/toy_corpus.txt", *argv],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    vocab = (tmp_path / "out" / "mine.vocab").read_text(encoding="utf-8")
    assert vocab.count("\n") == 320
    assert not (ROOT / "tokenizer.model").exists()
