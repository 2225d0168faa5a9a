"""Fixture shared by the recipe tests: a copy of egs/an4/asr1 (and the template) in tmp_path."""
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUTPUT_DIRS = ("data", "dump", "exp", "downloads")


@pytest.fixture
def recipe(tmp_path) -> Path:
    """<tmp>/egs/{TEMPLATE,an4}/asr1 copies; utils, tools and espnet_llm linked, as path.sh expects them."""
    for part in ("utils", "tools", "espnet_llm"):
        (tmp_path / part).symlink_to(REPO / part)
    shutil.copytree(REPO / "egs" / "TEMPLATE", tmp_path / "egs" / "TEMPLATE")
    shutil.copytree(REPO / "egs" / "an4" / "asr1", tmp_path / "egs" / "an4" / "asr1", symlinks=True,
                    ignore=shutil.ignore_patterns(*OUTPUT_DIRS, "RESULTS.md"))
    return tmp_path / "egs" / "an4" / "asr1"
