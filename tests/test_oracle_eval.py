"""Live oracle for evaluation (CI: `pytest -m oracle`): perplexity and multiple-choice log-probabilities
against transformers loading the same GGUF in float32 and scoring the same way, on text and items
written here (not the benchmark files)."""
import numpy as np
import pytest

from conftest import gemma3_gguf_path, smollm2_gguf_path

pytestmark = pytest.mark.oracle
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXT = ("The lighthouse keeper climbed the stairs every evening. He lit the lamp, wrote the names of the ships "
        "in a small notebook, and listened to the sea. In winter the storms were long; in summer the fog came "
        "at dawn and left by noon. Nobody in the village remembered a night when the light had failed. ") * 6
ITEMS = [("A cook cracks two eggs into a bowl. She", ["whisks them with a fork.", "paints the bowl blue.",
                                                     "drives the bowl to work.", "reads the eggs a story."], 0),
         ("Question: where do fish live?\nAnswer:", ["in water", "in the sky", "on the moon"], 0),
         ("The man tied his shoes and", ["went for a run.", "went for a swim in the shoes.", "ate the laces."], 0)]


@pytest.fixture(scope="module", params=["smollm2", "gemma3"])
def pair(request):
    from model.formats.loader import load
    path = smollm2_gguf_path() if request.param == "smollm2" else gemma3_gguf_path()
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                            dtype=torch.float32).eval()
    return load(str(path)), ref


def ref_logprobs(ref, ids):
    """log p(token t | tokens before it) for t = 1.. of one sequence, from transformers."""
    with torch.no_grad():
        logits = ref(torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(logits, -1)[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0].numpy()


def test_perplexity_equals_transformers_scoring_the_same_way(pair):
    from model.evaluation.perplexity import chunk_tokens, perplexity
    loaded, ref = pair
    tok = loaded.tokenizer
    ctx = 64
    run = perplexity(loaded.model, tok, TEXT, ctx=ctx, chunks=4)
    nll = []
    for chunk in chunk_tokens(tok.encode(TEXT, bos=tok.add_bos), ctx, 4, tok.bos_id if tok.add_bos else None):
        nll += list(-ref_logprobs(ref, chunk.tolist())[ctx // 2:])      # positions ctx/2 .. ctx-2 predicting
    ppl = float(np.exp(np.mean(nll)))
    assert run.count == len(nll) == 4 * (ctx // 2 - 1)
    assert abs(run.estimate()[0] - ppl) <= 2e-4 * ppl


def test_choice_logprobs_equal_transformers_scoring_each_choice_alone(pair):
    from model.evaluation.choices import score_item, tokenize_item
    from model.evaluation.datasets import Item
    loaded, ref = pair
    for k, (context, choices, label) in enumerate(ITEMS):
        item = Item(context, tuple(choices), label)
        scored = score_item(loaded.model, loaded.tokenizer, item, k)
        seqs, prefix = tokenize_item(loaded.tokenizer, item)
        means = []
        for c, s in enumerate(seqs):
            lp = ref_logprobs(ref, s)[prefix - 1:]                          # the tokens after the shared prefix
            means.append(lp.mean())
            assert abs(scored.logprob_sum[c] - lp.sum()) <= 2e-3 * len(lp)
        np.testing.assert_allclose(scored.logprob_mean, means, atol=2e-3)
        assert scored.pred_norm == int(np.argmax(means))
