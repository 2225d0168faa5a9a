"""Importing espnet_llm's task (and with it ESPnet's ASR task) fetches nothing: g2p_en's import-time
nltk.download() calls are switched off (espnet_llm/__init__.py). tools/install.sh's final import check imports
espnet_llm (the guard) before ESPnet, so it fetches nothing either."""
import os
import re
import subprocess
import sys
from pathlib import Path

CHECK = """
import nltk
calls = []
nltk.download = lambda *args, **kwargs: calls.append(args) or False
import espnet_llm.tasks.llm_asr, espnet2.tasks.asr
assert calls == [], calls
assert nltk.download.__name__ == "<lambda>"  # the caller's own nltk.download is back in place
print("ok")
"""


def test_task_import_calls_no_nltk_download():
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
    assert "nltk_data" not in proc.stderr


# ---------------------------------------------------------------- tools/install.sh's final check
INSTALL_SH = Path(__file__).resolve().parents[1] / "tools" / "install.sh"
# Loaded before anything else by the python that the check runs (sitecustomize on PYTHONPATH): every name lookup,
# connection and URL request is refused and written to $NETWORK_LOG, so a download attempt fails and is seen.
NO_NETWORK = """
import os, sys
def _refuse(event, args):
    if event in ("socket.getaddrinfo", "socket.connect", "urllib.Request"):
        with open(os.environ["NETWORK_LOG"], "a") as log:
            log.write(f"{event} {args!r}\\n")
        raise OSError(f"network refused by the test: {event}")
sys.addaudithook(_refuse)
"""


def install_check_line() -> str:
    """The command line of install.sh's final import check (its one `python -c "import ...`)."""
    check = '"${VENV}/bin/python" -c "import '
    lines = [line for line in INSTALL_SH.read_text().splitlines() if line.startswith(check)]
    assert len(lines) == 1, lines
    return lines[0]


def run_without_network(tmp_path: Path, command: str, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    (tmp_path / "site").mkdir(exist_ok=True)
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_NETWORK)
    log = tmp_path / "network.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, VENV=str(Path(sys.executable).parents[1]), PYTHONPATH=str(tmp_path / "site"),
               NETWORK_LOG=str(log), **env)
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300, check=False, env=env)
    return proc, log.read_text() if log.exists() else ""


def test_install_check_imports_the_nltk_guard_first_and_fetches_nothing(tmp_path):
    line = install_check_line()
    modules = [m.strip() for m in re.search(r'-c "import ([\w., ]+);', line).group(1).split(",")]
    assert modules[0] == "espnet_llm" and "espnet2.tasks.asr" in modules, modules  # the guard before ESPnet
    # the harness sees a download: g2p_en (which espnet2.tasks.asr imports) without the guard asks for nltk_data
    # (HOME elsewhere: no ~/nltk_data of this user's)
    proc, attempts = run_without_network(tmp_path, '"${VENV}/bin/python" -c "import g2p_en"', HOME=str(tmp_path))
    assert "urllib.Request ('https://raw.githubusercontent.com/nltk/nltk_data" in attempts, attempts + proc.stderr
    # install.sh's check, exactly as it runs there
    proc, attempts = run_without_network(tmp_path, line)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert attempts == "" and "nltk_data" not in proc.stderr, attempts + proc.stderr[-3000:]
