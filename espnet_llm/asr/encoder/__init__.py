"""ESPnet encoders for espnet_llm (``whisper``: WhisperEncoder)."""
