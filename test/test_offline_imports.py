"""Importing espnet_llm's task (and with it ESPnet's ASR task) fetches nothing: g2p_en's import-time
nltk.download() calls are switched off (espnet_llm/__init__.py)."""
import subprocess
import sys

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
