"""Speech LLM model parts: splice, projectors, LLM loading, the ESPnet model, encoders."""
