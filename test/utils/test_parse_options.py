"""Tests of utils/parse_options.sh, sourced by a small script under `set -euo pipefail` as recipes do."""
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
nj=4             # number of parallel jobs
use_gpu=false    # decode on the GPU
out_dir=exp/x
help_message="Usage: $0 [options] <data-dir>"
. {REPO}/utils/parse_options.sh
echo "nj=${{nj}} use_gpu=${{use_gpu}} out_dir=${{out_dir}} args=$#:$*"
"""


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "stage.sh"
    path.write_text(SCRIPT)
    return path


def run(script: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", script.name, *args], cwd=script.parent, capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.mark.parametrize("args, expected", [
    ([], "nj=4 use_gpu=false out_dir=exp/x args=0:"),
    (["--nj", "8", "--use-gpu", "true", "data/train"], "nj=8 use_gpu=true out_dir=exp/x args=1:data/train"),
    (["--out_dir", "exp/a b", "x", "--nj", "2"], "nj=4 use_gpu=false out_dir=exp/a b args=3:x --nj 2"),
    (["--nj=16", "--", "--use-gpu"], "nj=16 use_gpu=false out_dir=exp/x args=1:--use-gpu"),
    (["--out-dir", "it's $HOME `x`"], "nj=4 use_gpu=false out_dir=it's $HOME `x` args=0:"),
])
def test_options_set_defined_variables(script, args, expected):
    result = run(script, *args)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, expected, "")


def test_config_file_is_read_first_and_command_line_wins(script):
    (script.parent / "decode.conf").write_text("nj=7\nuse_gpu=true\n")
    assert run(script, "--config", "decode.conf").stdout.strip() == "nj=7 use_gpu=true out_dir=exp/x args=0:"
    assert run(script, "--nj", "3", "--config", "decode.conf").stdout.strip() == "nj=3 use_gpu=true out_dir=exp/x args=0:"
    result = run(script, "--config", "missing.conf")
    assert (result.returncode, result.stderr) == (1, "stage.sh: cannot read config file 'missing.conf'\n")


@pytest.mark.parametrize("args, message", [
    (["--jobs", "3"], "stage.sh: invalid option --jobs (no variable jobs to set; see --help)"),
    (["--use-gpu", "yes"], "stage.sh: option --use-gpu takes true or false, got 'yes'"),
    (["--nj"], "stage.sh: option --nj needs a value"),
])
def test_errors(script, args, message):
    result = run(script, *args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")


def test_help_prints_the_message_and_each_option_with_its_comment(script):
    result = run(script, "--nj", "6", "--help")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "Usage: stage.sh [options] <data-dir>",
        "Options (current value, then what it does):",
        "  --nj                       (6)              number of parallel jobs",
        "  --use-gpu                  (false)          decode on the GPU",
        "  --out-dir                  (exp/x)",
    ]
