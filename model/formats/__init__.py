"""File formats: safetensors, GGUF and its quantizations, the GGUF name table, ollama, the Hub,
the installed SmolLM2, and the loader that turns a `--model` spec into a model."""
