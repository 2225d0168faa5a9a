"""ESPnet tasks of espnet_llm."""
