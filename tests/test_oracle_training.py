"""Live oracle for training (CI: `pytest -m oracle`): our hand-written gradients against PyTorch
autograd on transformers' own models with the same weights and batch; AdamW against torch.optim."""
import numpy as np
import pytest

from model.config import LlamaConfig

from testkit.checkpoints import config_dict

pytestmark = pytest.mark.oracle
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CASES = ["mha", "gqa", "tied", "odd", "headdim", "qwen2", "llama3"]


def torch_model(name: str, dtype, vocab: int = 97):
    """A randomly initialised transformers model of a named test config, and its config for us."""
    fields = config_dict(name, vocab)
    cls = transformers.Qwen2ForCausalLM if fields["model_type"] == "qwen2" else transformers.LlamaForCausalLM
    config_cls = transformers.Qwen2Config if fields["model_type"] == "qwen2" else transformers.LlamaConfig
    fields = {k: v for k, v in fields.items() if k not in ("architectures", "torch_dtype")}
    torch.manual_seed(CASES.index(name))
    model = cls(config_cls(**fields, attn_implementation="eager")).to(dtype)
    with torch.no_grad():  # norms away from 1 and biases away from 0, so their gradients are tested too
        for n, p in model.named_parameters():
            if n.endswith("norm.weight") or n.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model, LlamaConfig.from_dict(config_dict(name, vocab))


def torch_loss_and_grads(model, inputs, targets):
    model.zero_grad()
    logits = model(torch.tensor(inputs)).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.tensor(targets).reshape(-1))
    loss.backward()
    return float(loss.detach()), {n: p.grad.numpy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-4)])
def test_gradients_equal_autograd(name, dtype, tol):
    from model.train import loss_and_grads
    model, cfg = torch_model(name, dtype)
    rng = np.random.default_rng(1)
    inputs, targets = rng.integers(0, 97, (3, 17)), rng.integers(0, 97, (3, 17))
    inputs[0, :6] = 5  # repeated ids
    ref_loss, ref = torch_loss_and_grads(model, inputs, targets)
    weights = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    loss, grads = loss_and_grads(cfg, weights, inputs, targets)
    assert abs(loss - ref_loss) <= tol * abs(ref_loss)
    assert set(grads) == set(ref)
    for n in ref:
        err = np.abs(grads[n] - ref[n]).max() / np.abs(ref[n]).max()
        assert err <= tol, (n, err)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_adamw_equals_torch_over_ten_steps(dtype, tol):
    from model.train.optim import AdamW, clip_grad_norm
    rng = np.random.default_rng(2)
    shapes = {"a.weight": (5, 7), "norm.weight": (7,), "b.bias": (5,)}
    ours = {n: rng.standard_normal(s).astype(np.float64 if dtype == torch.float64 else np.float32)
            for n, s in shapes.items()}
    theirs = {n: torch.tensor(w.copy(), requires_grad=True) for n, w in ours.items()}
    decay = [theirs["a.weight"]]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": [theirs["norm.weight"], theirs["b.bias"]], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.99), eps=1e-8)
    mine = AdamW(ours, betas=(0.9, 0.99), weight_decay=0.1)
    for step in range(10):
        grads = {n: rng.standard_normal(s).astype(ours[n].dtype) * 3 for n, s in shapes.items()}
        for n, p in theirs.items():
            p.grad = torch.tensor(grads[n].copy())
        ref_norm = float(torch.nn.utils.clip_grad_norm_(list(theirs.values()), 1.0))
        lr = 1e-2 * (step + 1) / 10
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        assert abs(clip_grad_norm(grads, 1.0) - ref_norm) <= 1e-6 * ref_norm
        mine.step(ours, grads, lr)
        for n in shapes:
            ref = theirs[n].detach().numpy()
            assert np.abs(ours[n] - ref).max() / np.abs(ref).max() <= tol, (step, n)


def test_first_50_preset_steps_follow_pytorch():
    """The preset's model, batches and schedule: 50 steps of ours against the same steps in PyTorch (float64)."""
    from model.train import loss_and_grads
    from model.train.export import config_json
    from model.train.optim import AdamW, clip_grad_norm, lr_at
    from model.train.recipe import TrainSettings, init_weights, new_config
    s = TrainSettings()
    cfg = new_config(s, 65, None, None)
    ours = {n: w.astype(np.float64) for n, w in init_weights(cfg, np.random.default_rng(0)).items()}
    fields = {k: v for k, v in config_json(cfg).items() if k not in ("architectures", "torch_dtype")}
    ref = transformers.LlamaForCausalLM(transformers.LlamaConfig(**fields, attn_implementation="eager")).double()
    missing, _ = ref.load_state_dict({n: torch.tensor(w) for n, w in ours.items()}, strict=False)
    assert set(missing) <= {"lm_head.weight"}
    ref.tie_weights()
    # subtle: numpy's and torch's float32 cos differ in the last bit for some angles (6e-8), and 50 Adam
    # steps amplify that to ~2e-6 in a few weights; both sides use one rotary table, so what is compared is
    # the training math alone (the per-step losses agree to 1e-6 either way)
    from model.train.grads import rotary
    cos, sin = (torch.tensor(t)[None] for t in rotary(cfg, s.context, np.float64))
    ref.model.rotary_emb.forward = lambda x, position_ids: (cos, sin)
    params = dict(ref.named_parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params.values() if p.dim() >= 2], "weight_decay": s.weight_decay},
                             {"params": [p for p in params.values() if p.dim() < 2], "weight_decay": 0.0}],
                            lr=s.lr, betas=(s.beta1, s.beta2))
    mine = AdamW(ours, betas=(s.beta1, s.beta2), weight_decay=s.weight_decay)
    rng = np.random.default_rng(3)
    for step in range(50):
        lr = lr_at(step, lr=s.lr, min_lr=s.min_lr, warmup=s.warmup, steps=s.steps)
        b = rng.integers(0, 65, (s.batch, s.context + 1))
        loss, grads = loss_and_grads(cfg, ours, b[:, :-1], b[:, 1:])
        clip_grad_norm(grads, s.clip)
        mine.step(ours, grads, lr)
        opt.zero_grad()
        logits = ref(torch.tensor(b[:, :-1])).logits
        ref_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 65), torch.tensor(b[:, 1:]).reshape(-1))
        ref_loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), s.clip)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        assert abs(loss - float(ref_loss.detach())) <= 1e-6 * float(ref_loss.detach()), step
    # every step's loss agreed to 1e-6 above; the weights after 50 steps: per tensor ||diff|| / ||ref|| <= 1e-6
    # (measured 4e-8), and no single number further than 1e-5 of its tensor's largest (measured 1.6e-6:
    # Adam divides by sqrt(v), so weights whose gradients are near zero carry summation-order noise further)
    worst = {}
    for n, p in params.items():
        theirs = p.detach().numpy()
        worst[n] = (np.linalg.norm(ours[n] - theirs) / np.linalg.norm(theirs), np.abs(ours[n] - theirs).max() / np.abs(theirs).max())
    for n, (frob, peak) in worst.items():
        assert frob <= 1e-6 and peak <= 1e-5, (n, frob, peak)


@pytest.mark.parametrize("kind", ["char", "bpe:400"])
def test_exported_folder_in_transformers(tmp_path, kind):
    """transformers loads the trained folder: logits within 1e-4 of ours, its tokenizer gives our ids,
    and its greedy generate equals generate.py's text."""
    import os
    import subprocess
    import sys
    from conftest import ROOT, fixture_path
    from model.formats.loader import load
    text = fixture_path("tinyshakespeare.txt").read_text()[:80000]
    (tmp_path / "c.txt").write_text(text)
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), "--input", str(tmp_path / "c.txt"),
                          "--out", str(tmp_path / "run"), "--tokenizer", kind, "--steps", "40", "--eval-every", "100",
                          "--layers", "2", "--dim", "64", "--context", "48"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    folder = tmp_path / "run"
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    loaded = load(str(folder))
    prompt = "ROMEO:\nWhat light"   # + 12 new tokens stays inside the context of 48
    ids = loaded.tokenizer.encode(prompt)
    assert hf_tok(prompt, add_special_tokens=True)["input_ids"] == ids
    loaded.model.new_cache(48)
    ours = loaded.model.forward(ids, all_logits=True)
    with torch.no_grad():
        theirs = hf(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(ours - theirs).max() <= 1e-4
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", str(folder), "--prompt",
                          prompt, "--temperature", "0", "--max-new-tokens", "12"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    with torch.no_grad():
        gen = hf.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0].tolist()
    assert out.stdout == hf_tok.decode(gen) + "\n"


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-4)])
def test_ignored_targets_equal_cross_entropy_ignore_index(dtype, tol):
    """Targets of -100 (the prompt's tokens in instruction tuning) count neither in the loss nor in the
    gradients, as PyTorch's cross_entropy(ignore_index=-100)."""
    from model.train import loss_and_grads
    model, cfg = torch_model("gqa", dtype)
    rng = np.random.default_rng(4)
    inputs, targets = rng.integers(0, 97, (3, 17)), rng.integers(0, 97, (3, 17))
    targets[:, :9] = -100                                   # a prompt of 9 tokens per row
    targets[2, 12:] = -100                                  # and padding
    ref_loss, ref = torch_loss_and_grads(model, inputs, targets)
    weights = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    loss, grads = loss_and_grads(cfg, weights, inputs, targets)
    assert abs(loss - ref_loss) <= tol * abs(ref_loss)
    for n in ref:
        assert np.abs(grads[n] - ref[n]).max() / np.abs(ref[n]).max() <= tol, n
