"""espnet_llm: ESPnet-style recipes that give large language models speech recognition abilities."""
from setuptools import find_packages, setup

setup(
    name="espnet_llm",
    version="0.1.0",
    description="Speech LLMs (integration) and LLM fusion (combination) for ASR, ESPnet style",
    packages=find_packages(include=["espnet_llm", "espnet_llm.*"]),
    python_requires=">=3.10",
    install_requires=[],  # installed by tools/install.sh (torch must stay the CPU build); see README
    extras_require={"test": ["pytest"]},
)
