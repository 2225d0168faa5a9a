"""Decoding: scorers for ESPnet's beam search and batched greedy search over LLM prefixes."""
