"""`python -m espnet_llm.bin.<module> --help` of every entry point: exits 0 and shows the module's Usage docstring
(its first command). How fast it answers is measured by bench/bench_help.py, not asserted here."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[2] / "espnet_llm" / "bin"
MODULES = sorted(p.stem for p in BIN.glob("*.py") if not p.stem.startswith("_"))


def first_usage_command(module: str) -> str:
    """The first command line of the module's `Usage:` block (comments and `from Python` examples skipped)."""
    doc = ast.get_docstring(ast.parse((BIN / f"{module}.py").read_text(encoding="utf-8")))
    assert doc and "Usage:" in doc, f"{module} has no Usage: docstring"
    for line in doc.split("Usage:", 1)[1].splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line.rstrip("\\").strip()
    raise AssertionError(f"{module}: no command under Usage:")


@pytest.mark.parametrize("module", MODULES)
def test_help_exits_0_with_the_usage_docstring(module):
    proc = subprocess.run([sys.executable, "-m", f"espnet_llm.bin.{module}", "--help"], capture_output=True,
                          text=True, timeout=120, cwd=BIN.parents[1], check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage:" in proc.stdout
    assert first_usage_command(module) in proc.stdout


@pytest.mark.parametrize("module", ["asr_train", "llm_asr_train", "asr_inference"])
def test_help_all_lists_espnets_options(module):
    """The entry points on ESPnet's parsers: --help shows the Usage at once, --help_all ESPnet's own option list."""
    proc = subprocess.run([sys.executable, "-m", f"espnet_llm.bin.{module}", "--help_all"], capture_output=True,
                          text=True, timeout=300, cwd=BIN.parents[1], check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--output_dir" in proc.stdout and "--ngpu" in proc.stdout


def test_light_parsers_offer_the_libraries_choices():
    """Parsers built without torch keep their own copies of the libraries' choices; they must stay the same."""
    from espnet_llm import inference, packing
    from espnet_llm.bin import asr_fusion_inference, llm_asr_inference, pack, transcribe
    from espnet_llm.decode import fusion

    assert llm_asr_inference.TEXT_CASES == transcribe.TEXT_CASES == inference.TEXT_CASES
    assert set(asr_fusion_inference.TEXT_CASES) == set(fusion.TEXT_CASES)
    assert asr_fusion_inference.DELAYS == fusion.DelayedLLMScorer.DELAYS
    assert pack.LLM_MODES == packing.LLM_MODES
