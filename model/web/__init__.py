"""The local server: the page that shows a model's insides (static/), its JSON routes (server.py),
and the OpenAI-compatible API on the same port (openai_api.py). Routes validate, then call the
library (bpe/ for tokens and merges, model/ for forward passes, traces and sampling)."""
