"""The benchmarks end to end on tiny random models (--smoke): every mode runs and reports finite, positive figures."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(BENCH.parent)}
    proc = subprocess.run([sys.executable, str(BENCH / script), "--smoke", "--threads", "1", *extra], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    header = lines[0].strip("|").split("|")
    assert set(lines[1].strip("|").split("|")) == {"---"}
    return {cells[0]: dict(zip(header, cells)) for cells in (line.strip("|").split("|") for line in lines[2:])}


@pytest.mark.parametrize("script", ["bench_decode.py", "bench_train.py"])
def test_usage_docstring(script):
    text = (BENCH / script).read_text()
    assert text.split('"""')[1].split("Usage:")[1].strip().startswith("#")


def test_bench_decode_smoke():
    rows = run_bench("bench_decode.py")
    # llm_greedy_batch8: the 3 utterances in one batch; a "(DIFFERENT OUTPUT)" suffix would fail this list
    assert list(rows) == ["am_beam", "am_fusion_labelwise", "am_fusion_delayed", "am_rescore", "llm_greedy",
                          "llm_greedy_batch8", "llm_greedy_speculative", "llm_beam", "llm_beam_ctc"]
    assert float(rows["am_beam"]["xAM"]) == 1.0
    for mode, row in rows.items():
        assert row["utts"] == "3", mode
        for key in ("audio s", "wall s", "RTF", "xAM", "floor", "peak RSS GiB"):
            assert float(row[key]) > 0, (mode, key)
        assert row["peak GPU GiB"] == "-"
        assert float(row["RTF"]) == pytest.approx(float(row["wall s"]) / float(row["audio s"]), rel=0.02)
    # the draft's figures only for the speculative mode; at least one LLM forward per token-window, at most one per token
    for mode, row in rows.items():
        if mode == "llm_greedy_speculative":
            assert 0 <= float(row["draft accepted"]) <= 1 and 0 < float(row["forwards/token"]) <= 1
        else:
            assert row["draft accepted"] == row["forwards/token"] == "-", mode


def test_bench_decode_engines_smoke():
    pytest.importorskip("openvino")
    rows = run_bench("bench_decode.py", "--engines", "openvino:f32 openvino:int8", "--greedy_batch_size", "0")
    llm_modes = ["llm_greedy", "llm_greedy_speculative", "llm_beam", "llm_beam_ctc"]
    assert list(rows)[4:] == llm_modes + [f"{m}@openvino_f32" for m in llm_modes] + [f"{m}@openvino_int8" for m in llm_modes]
    for mode in llm_modes:
        assert float(rows[f"{mode}@openvino_f32"]["same as hf"]) == 1.0  # f32: the reference's output
        assert 0 <= float(rows[f"{mode}@openvino_int8"]["same as hf"]) <= 1
        assert rows[mode]["same as hf"] == "-"
    for row in rows.values():
        assert 0 <= float(row["WER"]), row


def test_bench_train_smoke():
    rows = run_bench("bench_train.py")
    assert list(rows) == ["frozen", "lora", "full"]
    trainable = {mode: int(row["trainable params"]) for mode, row in rows.items()}
    assert trainable["frozen"] < trainable["lora"] < trainable["full"]
    for mode, row in rows.items():
        assert float(row["audio s / wall s"]) > 0 and float(row["peak RSS GiB"]) > 0.1, mode
        assert float(row["last loss"]) > 0, mode
