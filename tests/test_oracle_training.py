"""Live oracle for training (CI: `pytest -m oracle`): our hand-written gradients against PyTorch
autograd on transformers' own models with the same weights and batch; AdamW against torch.optim."""
import numpy as np
import pytest

from model.config import LlamaConfig

from checkpoints import config_dict

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
