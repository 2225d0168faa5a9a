"""Entry points: `python -m espnet_llm.bin.<thing>_<verb>`."""
