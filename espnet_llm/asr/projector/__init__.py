"""Projectors: encoder frames -> LLM embedding space, at a coarser stride."""
