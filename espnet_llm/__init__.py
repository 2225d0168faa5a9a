"""espnet_llm: speech recognition with large language models, ESPnet style."""
