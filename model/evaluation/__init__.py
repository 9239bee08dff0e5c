"""How good is it: perplexity (llama.cpp's method) and multiple-choice benchmarks (HellaSwag, PIQA, a
learner's own questions), scored as llama.cpp and llm.c score them, with a report card.

  datasets.py    the files: HellaSwag's six-line format, PIQA's JSONL and labels, our choice JSONL
  perplexity.py  chunks of --ctx tokens, the second half of each scored
  choices.py     the endings of an item scored in one packed pass; acc (sum) and acc_norm (mean)
  report.py      the report card (markdown and JSON)
"""
