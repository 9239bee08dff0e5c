"""The ground floor: containers and I/O, knowing neither tokenizers nor models.

  atomic.py       writes that leave a file complete or absent
  json_file.py    a bounded JSON reader
  protobuf.py     the protobuf wire format (SentencePiece `.model` files)
  safetensors.py  the safetensors container (Hugging Face checkpoints)
  gguf.py         the GGUF container (llama.cpp's files): metadata and raw tensor bytes
  quants.py       GGML's quantized tensor types, dequantized to float32

`bpe/` and `model/` both build on these; nothing here imports either.
"""
