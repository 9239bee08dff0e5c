"""Training a Llama from scratch in NumPy, with a hand-written backward pass.

    backward.py  the backward of each forward function in model/layers.py
    grads.py     the whole model's loss and gradients: loss_and_grads(cfg, weights, inputs, targets)
    optim.py     AdamW, gradient clipping, the learning-rate schedule
    data.py      corpus -> tokenizer -> ids, the train/validation split, batches, evaluation windows
    loop.py      the training loop: progress, evaluation, checkpoints, resume, Ctrl-C
    export.py    the Hugging Face folder: config.json, model.safetensors, tokenizer, generation_config.json
"""
from .grads import loss_and_grads  # noqa: F401
