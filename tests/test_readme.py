"""The README's guided tour: every ```python snippet runs, in order, in one namespace."""
import contextlib
import io
import re

from conftest import ROOT


def tour_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = text.split("## The guided tour")[1].split("\n## ")[0]
    return re.findall(r"```python\n(.*?)```", tour, re.S)


def test_tour_has_all_stops():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    stops = ["Tokenization", "Embeddings", "Attention", "Rotary", "RMSNorm", "SwiGLU", "KV cache", "Sampling"]
    headings = re.findall(r"^### (\d)\. (.*)$", text, re.M)
    assert [int(n) for n, _ in headings] == list(range(1, 9))
    assert all(stop in title for stop, (_, title) in zip(stops, headings)), headings
    positions = [text.index(title) for _, title in headings]
    assert positions == sorted(positions)
    assert len(tour_snippets()) == 8


def test_tour_snippets_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    out = io.StringIO()
    for k, code in enumerate(tour_snippets(), 1):
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"README snippet {k}", "exec"), namespace)
    printed = out.getvalue()
    assert "[('de', 7), ('in', 6), ('ep', 4)]" in printed and "Xploy Xep moXls" in printed
