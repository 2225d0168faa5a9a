"""Fixture shared by the recipe tests: a copy of egs/an4/asr1 (and the template) in tmp_path."""
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUTPUT_DIRS = ("data", "dump", "exp", "downloads")


def copy_recipe(root: Path, corpus: str = "an4") -> Path:
    """<root>/egs/{TEMPLATE,<corpus>}/asr1 copies without outputs; utils, tools and espnet_llm linked, as path.sh
    expects them. Returns the recipe dir."""
    for part in ("utils", "tools", "espnet_llm"):
        (root / part).symlink_to(REPO / part)
    shutil.copytree(REPO / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    shutil.copytree(REPO / "egs" / corpus / "asr1", root / "egs" / corpus / "asr1", symlinks=True,
                    ignore=shutil.ignore_patterns(*OUTPUT_DIRS, "RESULTS*.md"))
    return root / "egs" / corpus / "asr1"


@pytest.fixture(scope="session")
def recipe_copy():
    """``copy_recipe`` for module-scoped fixtures (a fixture, as pytest.ini's importlib mode imports no conftest)."""
    return copy_recipe


@pytest.fixture
def recipe(tmp_path) -> Path:
    """A copy of egs/an4/asr1 in tmp_path (``copy_recipe``)."""
    return copy_recipe(tmp_path)
