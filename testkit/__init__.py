"""Helpers shared by the tests and the benchmark scripts (never by the library): random checkpoints
in HF and GGUF form, the file fuzzer, and a running scripts/serve.py. Some need the test extra
(gguf-py writes the GGUF files)."""
