"""Live oracle for instruction tuning with LoRA (CI: `pytest -m oracle`): the adapter a run writes loads
with peft onto the base model and gives the run's merged folder's logits; the adapters' gradients equal
PyTorch autograd's through peft's LoRA layers, with the prompt's targets ignored (-100)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, fixture_path, smollm2_tokenizer_json
from testkit.checkpoints import write_checkpoint

pytestmark = pytest.mark.oracle
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = write_checkpoint(tmp_path_factory.mktemp("base") / "m", "gqa", tokenizer=smollm2_tokenizer_json(),
                              vocab=49152)
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    return folder


def test_the_adapter_loads_with_peft_and_gives_the_merged_logits(base, tmp_path):
    data = tmp_path / "sft.json"
    data.write_text(json.dumps(json.loads(fixture_path("instruct/instruction-data.json").read_text())[:30]))
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), "--init", str(base), "--sft",
                          str(data), "--lora", "4", "--lora-alpha", "8", "--out", str(out), "--steps", "3",
                          "--batch", "2", "--context", "128", "--lr", "1e-2", "--min-lr", "1e-3", "--warmup", "0",
                          "--eval-every", "10", "--eval-windows", "2"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    tuned = peft.PeftModel.from_pretrained(reference, str(out / "adapter")).eval()
    merged = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    ids = torch.tensor([[1, 500, 2000, 30000, 77, 5, 900]])
    with torch.no_grad():
        a, b = tuned(ids).logits[0].numpy(), merged(ids).logits[0].numpy()
    np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(b).max(), rtol=0)
    plain = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).eval()
    with torch.no_grad():
        assert np.abs(plain(ids).logits[0].numpy() - b).max() > 1e-3   # the adapters moved the model


def with_adapters(model, r, alpha, targets, rng):
    """peft's LoRA layers on `model`, their A and B random (B away from zero, so every gradient counts)."""
    tuned = peft.get_peft_model(model, peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                                       lora_dropout=0.0))
    with torch.no_grad():
        for n, p in tuned.named_parameters():
            if "lora_" in n:
                p.copy_(torch.tensor(rng.standard_normal(p.shape) * 0.05))
    return tuned


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-4)])
def test_adapter_gradients_equal_autograd_through_peft(base, dtype, tol):
    from model.config import LlamaConfig
    from model.train import loss_and_grads
    from model.train.lora import LoRA
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype)
    targets_modules = ["q_proj", "v_proj", "down_proj"]
    rng = np.random.default_rng(5)
    tuned = with_adapters(model, 3, 6, targets_modules, rng)
    inputs, targets = rng.integers(0, 49152, (2, 9)), rng.integers(0, 49152, (2, 9))
    targets[:, :4] = -100
    logits = tuned(torch.tensor(inputs)).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.tensor(targets).reshape(-1))
    loss.backward()
    cfg = LlamaConfig.load(base / "config.json")
    w0 = {n: p.detach().numpy().copy() for n, p in model.named_parameters() if "lora_" not in n}
    w0 = {n.removeprefix("base_model.model.").replace(".base_layer", ""): a for n, a in w0.items()}
    lora = LoRA.new(w0, 3, 6.0, targets_modules, np.random.default_rng(0))
    for n, p in tuned.named_parameters():
        if "lora_" in n:                         # base_model.model.X.lora_A.default.weight -> X.weight.lora_A
            stem, kind = n.removeprefix("base_model.model.").split(".lora_")
            lora.params[f"{stem}.weight.lora_{kind.split('.')[0]}"][...] = p.detach().numpy()
    weights = {n: a.copy() for n, a in w0.items()}
    lora.move_weights(weights)
    tap, grads = lora.taps(cfg)
    ours_loss, _ = loss_and_grads(cfg, weights, inputs, targets, taps=tap)
    assert abs(ours_loss - float(loss.detach())) <= tol * float(loss.detach())
    for n, p in tuned.named_parameters():
        if "lora_" in n:
            stem, kind = n.removeprefix("base_model.model.").split(".lora_")
            ours = grads[f"{stem}.weight.lora_{kind.split('.')[0]}"]
            ref = p.grad.numpy()
            assert np.abs(ours - ref).max() <= tol * np.abs(ref).max(), n


def torch_dpo_loss(model, x, y, ref, beta):
    """DPO as the paper writes it, in PyTorch: -log sigmoid(beta ((lw - rw) - (ll - rl))), mean over pairs."""
    logits = model(torch.tensor(x)).logits
    logp = torch.log_softmax(logits, dim=-1)
    t = torch.tensor(y)
    counted = t != -100
    picked = torch.gather(logp, -1, torch.where(counted, t, 0)[..., None])[..., 0]
    lp = (picked * counted).sum(dim=-1)                                    # [2P]
    P = len(ref)
    z = beta * ((lp[:P] - torch.tensor(ref[:, 0])) - (lp[P:] - torch.tensor(ref[:, 1])))
    return -torch.nn.functional.logsigmoid(z).mean()


@pytest.mark.parametrize("lora", [False, True])
def test_dpo_gradients_equal_autograd(base, lora):
    """DPO's loss and gradient (model/train/dpo.py), full and through LoRA's taps, against PyTorch autograd
    of the DPO loss on the same padded rows (float64, 1e-6)."""
    from model.config import LlamaConfig
    from model.train.dpo import Pairs
    from model.train.lora import LoRA
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float64)
    IGN, beta = -100, 0.3
    chosen = [([1, 50, 60, 70, 80], [IGN, IGN, 70, 80, 2]), ([5, 6, 7], [IGN, 7, 2])]
    rejected = [([1, 50, 60, 90], [IGN, IGN, 90, 2]), ([5, 6, 9, 9, 9, 9], [IGN, 9, 9, 9, 9, 2])]
    ref = np.array([[-20.0, -18.5], [-30.0, -33.0]])
    pairs = Pairs(chosen, rejected, ref, beta=beta, pad=0)
    picks = np.arange(2)
    x, y = pairs.rows(picks, 16)
    cfg = LlamaConfig.load(base / "config.json")
    if lora:
        tuned = with_adapters(model, 2, 5, ["q_proj", "up_proj"], np.random.default_rng(7))
        loss = torch_dpo_loss(tuned, x, y, ref, beta)
        loss.backward()
        w0 = {n.removeprefix("base_model.model.").replace(".base_layer", ""): p.detach().numpy().copy()
              for n, p in tuned.named_parameters() if "lora_" not in n}
        adapters = LoRA.new(w0, 2, 5.0, ["q_proj", "up_proj"], np.random.default_rng(0))
        expected = {}
        for n, p in tuned.named_parameters():
            if "lora_" in n:
                stem, kind = n.removeprefix("base_model.model.").split(".lora_")
                key = f"{stem}.weight.lora_{kind.split('.')[0]}"
                adapters.params[key][...] = p.detach().numpy()
                expected[key] = p.grad.numpy()
        weights = {n: a.copy() for n, a in w0.items()}
        adapters.move_weights(weights)
        tap, grads = adapters.taps(cfg)
        ours_loss, _ = pairs.step(cfg, weights, (picks, x, y), taps=tap)
    else:
        loss = torch_dpo_loss(model, x, y, ref, beta)
        loss.backward()
        weights = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
        expected = {n: p.grad.numpy() for n, p in model.named_parameters()}
        ours_loss, grads = pairs.step(cfg, weights, (picks, x, y))
    assert abs(ours_loss - float(loss.detach())) <= 1e-6 * abs(float(loss.detach()))   # rotary in float32, as HF
    assert set(grads) == set(expected)
    for n, ref_grad in expected.items():
        assert np.abs(grads[n] - ref_grad).max() <= 1e-6 * max(np.abs(ref_grad).max(), 1e-12), n
