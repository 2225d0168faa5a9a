"""The benchmarks end to end on tiny random models (--smoke): every mode runs and reports finite, positive figures."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
# a loaded machine (the tests niced beside a training job) may need more: BENCH_SMOKE_TIMEOUT=1800
TIMEOUT = int(os.environ.get("BENCH_SMOKE_TIMEOUT", "300"))


def run_script(script: str, *extra: str) -> str:
    """The stdout of `script --smoke --threads 1 extra...`, which must succeed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(BENCH.parent)}
    proc = subprocess.run([sys.executable, str(BENCH / script), "--smoke", "--threads", "1", *extra], capture_output=True,
                          text=True, env=env, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def table_rows(text: str) -> list:
    """The rows (dicts by column) of the one Markdown table in `text`."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = lines[0].strip("|").split("|")
    assert set(lines[1].strip("|").split("|")) == {"---"}
    return [dict(zip(header, line.strip("|").split("|"))) for line in lines[2:]]


def run_bench(script: str, *extra: str, key: str = "mode") -> dict:
    """{row[key]: row} of the table that `script --smoke extra...` prints."""
    return {row[key]: row for row in table_rows(run_script(script, *extra))}


def report_sections(path: Path) -> dict:
    """{title: text} of the `## ` sections of a report; the file starts with its `# ` header."""
    text = path.read_text()
    assert text.startswith("# Decoding benchmarks\n")
    chunks = text.split("\n## ")[1:]
    titles = [chunk.split("\n", 1)[0] for chunk in chunks]
    assert len(titles) == len(set(titles)), titles
    return {chunk.split("\n", 1)[0]: chunk.split("\n", 1)[1] for chunk in chunks}


@pytest.mark.parametrize("script", ["bench_decode.py", "bench_train.py", "bench_cost_split.py"])
def test_usage_docstring(script):
    text = (BENCH / script).read_text()
    assert text.split('"""')[1].split("Usage:")[1].strip().startswith("#")


def test_bench_decode_smoke():
    rows = run_bench("bench_decode.py")
    # llm_greedy*_batch8: the 3 utterances in one batch; a "(DIFFERENT OUTPUT)" suffix would fail this list
    assert list(rows) == ["am_beam", "am_fusion_labelwise", "am_fusion_delayed", "am_rescore", "llm_greedy",
                          "llm_greedy_batch8", "llm_greedy_speculative", "llm_greedy_speculative_batch8", "llm_beam",
                          "llm_beam_ctc"]
    assert float(rows["am_beam"]["xAM"]) == 1.0
    for mode, row in rows.items():
        assert row["utts"] == "3", mode
        for key in ("audio s", "wall s", "RTF", "xAM", "floor", "peak RSS GiB"):
            assert float(row[key]) > 0, (mode, key)
        assert row["peak GPU GiB"] == "-"
        assert float(row["RTF"]) == pytest.approx(float(row["wall s"]) / float(row["audio s"]), rel=0.02)
    # the draft's figures only for the speculative mode; at least one LLM forward per token-window, at most one per token
    for mode, row in rows.items():
        if mode.startswith("llm_greedy_speculative"):
            assert 0 <= float(row["draft accepted"]) <= 1 and 0 < float(row["forwards/token"]) <= 1
        else:
            assert row["draft accepted"] == row["forwards/token"] == "-", mode


def test_bench_decode_report_smoke(tmp_path):
    report = tmp_path / "R.md"
    quick = ("--llm_modes", "llm_greedy", "--greedy_batch_size", "0", "--report", str(report))
    out = run_script("bench_decode.py", *quick, "--targets", "rtf>0 wer<=-1")
    assert "# targets met: `rtf>0`: am_beam, " in out and "`wer<=-1`: none; all: none" in out
    smoke = report_sections(report)["smoke"]
    assert "bench_decode.py --smoke --threads 1 --llm_modes llm_greedy" in smoke and "OMP_NUM_THREADS=1 python" in smoke
    assert "- data: 3 utterances, " in smoke and "torch threads 1" in smoke and "- date: " in smoke
    assert "targets met: `rtf>0`: am_beam" in smoke
    printed = [line for line in out.splitlines() if line.startswith("|")]
    assert [line for line in smoke.splitlines() if line.startswith("|")] == printed  # the table the script prints
    assert [row["mode"] for row in table_rows(smoke)] == ["am_beam", "am_fusion_labelwise", "am_fusion_delayed",
                                                          "am_rescore", "llm_greedy"]
    # another title: a second section, the first kept as it was
    run_script("bench_decode.py", *quick, "--report_title", "other set")
    sections = report_sections(report)
    assert list(sections) == ["smoke", "other set"] and sections["smoke"].strip() == smoke.strip()
    assert "targets met" not in sections["other set"] and table_rows(sections["other set"])
    # the same title again: that section replaced in place (no targets line now), the other kept
    run_script("bench_decode.py", *quick)
    again = report_sections(report)
    assert list(again) == ["smoke", "other set"] and again["other set"] == sections["other set"]
    assert "targets met" not in again["smoke"] and len(table_rows(again["smoke"])) == 5


def test_report_sections(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        from common import write_report_section
    finally:
        sys.path.remove(str(BENCH))
    report = tmp_path / "sub" / "R.md"
    write_report_section(report, "a", "```sh\n## not a title\n```\n\n|x|\n|---|\n|1|")
    write_report_section(report, "b", "text b")
    report.write_text(report.read_text() + "\n## c\n\nhand-written\n")
    write_report_section(report, " a ", "new a")
    assert report.read_text() == "# Decoding benchmarks\n\n## a\n\nnew a\n\n## b\n\ntext b\n\n## c\n\nhand-written\n"
    with pytest.raises(ValueError):
        write_report_section(report, " ", "x")


def test_bench_cost_split_smoke(tmp_path):
    out = run_script("bench_cost_split.py", "--out", str(tmp_path / "r.json"), "--report", str(tmp_path / "R.md"))
    rows = table_rows(out)
    modes = {}
    for row in rows:
        modes.setdefault(row["mode"], {})[row["part"]] = row
    assert list(modes) == ["llm_greedy", "llm_beam_ctc"]
    for mode, parts in modes.items():
        assert list(parts) == ["encoder + projector", "CTC best path", "LLM prefill", "LLM step forwards",
                               "KV-cache gather", "KV-cache copy", "CTC prefix scoring", "rest", "total"], mode
        total = float(parts["total"]["seconds"])
        assert total > 0
        for part, row in parts.items():
            assert float(row["seconds"]) >= 0, (mode, part)
        assert sum(float(parts[p]["seconds"]) for p in parts if p != "total") == pytest.approx(total, rel=0.05)
        assert int(parts["LLM step forwards"]["calls"]) > 0 and float(parts["LLM step forwards"]["ms/call"]) > 0
        assert int(parts["LLM prefill"]["calls"]) == 3 and int(parts["encoder + projector"]["calls"]) == 3
    # greedy gathers no cache rows and scores no CTC prefixes; the beam does, once per step forward
    assert modes["llm_greedy"]["KV-cache gather"]["calls"] == modes["llm_greedy"]["CTC prefix scoring"]["calls"] == "0"
    beam = modes["llm_beam_ctc"]
    assert beam["KV-cache gather"]["calls"] == beam["CTC prefix scoring"]["calls"] == beam["LLM step forwards"]["calls"]
    # the JSON entry: unrounded figures that add up exactly (rest = total less the timed parts, never negative)
    entry = json.loads((tmp_path / "r.json").read_text())[-1]
    assert entry["script"] == "bench_cost_split" and [r["mode"] for r in entry["rows"]] == list(modes)
    for row in entry["rows"]:
        assert all(p["seconds"] >= 0 for p in row["parts"])
        assert sum(p["seconds"] for p in row["parts"]) == pytest.approx(row["total_s"], rel=1e-9)
    section = report_sections(tmp_path / "R.md")["smoke cost split"]
    assert [line for line in section.splitlines() if line.startswith("|")] == [
        line for line in out.splitlines() if line.startswith("|")]


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
    rows = run_bench("bench_train.py", key="tuning")
    assert list(rows) == ["frozen", "lora", "full"]
    trainable = {mode: int(row["trainable params"]) for mode, row in rows.items()}
    assert trainable["frozen"] < trainable["lora"] < trainable["full"]
    for mode, row in rows.items():
        assert float(row["audio s / wall s"]) > 0 and float(row["peak RSS GiB"]) > 0.1, mode
        assert float(row["last loss"]) > 0, mode
