import json
import subprocess
from pathlib import Path

from espnet_llm.bin.results_make import main as results_make_main
from espnet_llm.results import KEPT_NOTE, MARKER, collect_systems, environment, render, write_results
from espnet_llm.scoring import score

REPO = Path(__file__).resolve().parents[1]
# 10 reference words; hyp: 1 sub, 1 del, 1 ins -> WER 30.0; 2 of 3 sentences wrong
REF = {"u1": "ONE TWO THREE FOUR FIVE", "u2": "SIX SEVEN EIGHT", "u3": "NINE TEN"}
HYP = {"u1": "ONE TOO THREE FOUR", "u2": "SIX SEVEN EIGHT EIGHTY", "u3": "NINE TEN"}
ENV = {"date": "Thu Jan 01 00:00:00 UTC 2026", "python version": "3.x", "Git hash": "abc123"}


def make_exp(root: Path) -> Path:
    """exp/llm_asr with decode_beam4 scored on `test` (WER + CER) and decode_greedy scored on `test` (WER only)."""
    exp = root / "exp" / "llm_asr"
    for decode, hyp in (("decode_beam4", HYP), ("decode_greedy", {**HYP, "u3": "NINE"})):
        test_dir = exp / decode / "test"
        score(REF, hyp, test_dir / "score_wer", unit="word")
        if decode == "decode_beam4":
            score(REF, hyp, test_dir / "score_cer", unit="char")
    (exp / "command.txt").write_text("python -m espnet_llm.bin.asr_train --config conf/train_llm.yaml\n")
    (exp / "meta.json").write_text(json.dumps({"encoder": "conformer", "llm_tuning": "lora", "stride": 4}))
    (exp / "decode_beam4" / "command.txt").write_text("python -m espnet_llm.bin.asr_inference --beam_size 4\n")
    (exp / "decode_beam4" / "meta.json").write_text(json.dumps({"decoding_mode": "beam", "stride": 8}))
    return exp


def test_collect_systems_reads_scores_commands_and_meta(tmp_path):
    make_exp(tmp_path)
    (tmp_path / "exp" / "no_decodes").mkdir()
    systems = collect_systems([str(tmp_path / "exp" / "*")])
    assert [s.decode_tag for s in systems] == ["beam4", "greedy"]
    beam, greedy = systems
    assert beam.scores["WER"]["test"]["Err"] == 30.0 and beam.scores["WER"]["test"]["counts"]["Ins"] == 1
    # CER: 46 reference tokens (39 letters + 7 <space>); TWO->TOO 1 sub, "<space>FIVE" 5 del, "<space>EIGHTY" 7 ins
    assert beam.scores["CER"]["test"]["Wrd"] == 46 and beam.scores["CER"]["test"]["counts"]["Err"] == 13
    assert beam.commands == {"train": "python -m espnet_llm.bin.asr_train --config conf/train_llm.yaml",
                             "decode": "python -m espnet_llm.bin.asr_inference --beam_size 4"}
    assert beam.meta == {"encoder": "conformer", "llm_tuning": "lora", "stride": 8, "decoding_mode": "beam"}
    assert greedy.scores["WER"]["test"]["Err"] == 40.0 and "CER" not in greedy.scores
    assert "decode" not in greedy.commands


def test_render_tables_and_summary(tmp_path):
    exp = make_exp(tmp_path)
    text = render(collect_systems([str(exp)]), ENV)
    lines = text.splitlines()
    assert lines[:6] == ["# RESULTS", "", "## Environments", "- date: `Thu Jan 01 00:00:00 UTC 2026`",
                         "- python version: `3.x`", "- Git hash: `abc123`"]
    assert "|system|decode|dataset|WER|CER|Ins|#Ins|" in lines
    assert "|llm_asr|beam4|test|30.0|28.3|10.0|1|" in lines
    assert "|llm_asr|greedy|test|40.0|-|10.0|1|" in lines
    assert f"## {exp.as_posix()}/decode_beam4" in lines
    assert "- encoder: conformer; llm_tuning: lora; stride: 8; decoding_mode: beam" in lines
    assert "python -m espnet_llm.bin.asr_inference --beam_size 4" in lines
    assert "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|#Ins|" in lines
    beam_section = text[text.index("decode_beam4\n"):text.index("decode_greedy\n")]
    assert "### WER" in beam_section and "### CER" in beam_section
    assert "|test|3|10|80.0|10.0|10.0|10.0|30.0|66.7|1|" in beam_section
    assert "|test|3|46|87.0|2.2|10.9|15.2|28.3|66.7|7|" in beam_section


def test_result_txt_is_read_when_json_is_missing(tmp_path):
    exp = make_exp(tmp_path)
    (exp / "decode_greedy" / "test" / "score_wer" / "result.json").unlink()
    greedy = collect_systems([str(exp)])[1]
    assert greedy.scores["WER"]["test"]["Err"] == 40.0 and greedy.scores["WER"]["test"]["counts"]["Del"] == 2


def test_write_results_keeps_header_above_marker(tmp_path):
    exp = make_exp(tmp_path)
    out = tmp_path / "RESULTS.md"
    systems = collect_systems([str(exp)])
    write_results(systems, out, ENV)
    assert out.read_text().startswith(MARKER + "\n# RESULTS\n")
    out.write_text("# AN4 speech LLM\nHand-written notes.\n\n" + out.read_text().replace("30.0", "99.9"))
    write_results(systems, out, ENV)
    text = out.read_text()
    assert text.startswith("# AN4 speech LLM\nHand-written notes.\n\n" + MARKER + "\n# RESULTS\n")
    assert text.count(MARKER) == 1 and "99.9" not in text and "|llm_asr|beam4|test|30.0|" in text


def test_rerun_without_earlier_exp_dirs_keeps_their_rows_and_sections(tmp_path):
    exp = make_exp(tmp_path)
    out = tmp_path / "RESULTS.md"
    write_results(collect_systems([str(exp)]), out, ENV)
    before = out.read_text()
    other = tmp_path / "fresh" / "exp" / "llm_asr_new"
    score(REF, REF, other / "decode_greedy" / "test" / "score_wer", unit="word")
    text = write_results(collect_systems([str(other)]), out, ENV)  # a fresh checkout: only the new system
    assert "|llm_asr_new|greedy|test|0.0|" in text
    assert "|llm_asr|beam4|test|30.0|28.3|10.0|1|" in text and "|llm_asr|greedy|test|40.0|" in text
    for name in ("llm_asr/decode_beam4", "llm_asr/decode_greedy"):
        section = text[text.index(f"{name}\n"):]
        section = section[:section.index("\n## ") if "\n## " in section else len(section)]
        assert section.count(KEPT_NOTE) == 1
    beam4 = before[before.index("llm_asr/decode_beam4\n"):]
    assert beam4[beam4.index("### WER"):beam4.index("### CER")] in text  # its tables unchanged
    rows = [line for line in text.splitlines() if line.startswith("|llm_asr")]
    assert rows == sorted(rows, key=lambda r: r.split("|")[1:4])
    again = write_results(collect_systems([str(other)]), out, ENV)  # idempotent: no second note, no duplicates
    assert again == text
    dropped = write_results(collect_systems([str(other)]), out, ENV, keep_missing=False)
    assert "|llm_asr|" not in dropped and "llm_asr/decode_beam4" not in dropped


def test_environment_block():
    env = environment(REPO)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert env["Git hash"] == head and env["Git dirty"] in ("yes", "no")
    assert env["torch version"].startswith("2.13.0")
    assert env["espnet version"] == "202511"
    assert env["transformers version"][0].isdigit() and env["peft version"][0].isdigit()
    assert env["python version"].startswith("3.")
    assert env["machine"].startswith("nproc ")


def test_results_make_cli(tmp_path, monkeypatch, capsys):
    make_exp(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert results_make_main(["--exp_dirs", "exp/*", "--out", "RESULTS.md"]) == 0
    assert capsys.readouterr().out == "RESULTS.md: 2 systems, 2 rows\n"
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## exp/llm_asr/decode_beam4" in text and "- torch version: `2.13.0" in text
    assert results_make_main(["--exp_dirs", "nothing/*", "--out", "R2.md"]) == 1
    assert "no decode_*" in capsys.readouterr().err and not (tmp_path / "R2.md").exists()


def test_baseline_column_has_sc_stats_verdicts(tmp_path, monkeypatch, capsys):
    """Two systems scored by sclite on 20 utterances; the bad one is significantly worse than the baseline."""
    from espnet_llm.scoring import score

    words = "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE ZERO".split()
    ref = {f"spk{i % 4}-u{i:02d}": " ".join(words[i % 10:] + words[: i % 10][:2]) for i in range(20)}
    good = dict(ref)
    bad = {u: " ".join(t.split()[::2]) + " YES" for u, t in ref.items()}
    for name, hyp in (("asr_am", good), ("llm_asr_x", bad)):
        score(ref, hyp, tmp_path / "exp" / name / "decode_beam" / "test" / "score_wer")
    monkeypatch.chdir(tmp_path)
    base = "exp/asr_am/decode_beam"
    assert results_make_main(["--exp_dirs", "exp/*", "--out", "RESULTS.md", "--baseline", base]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "|system|decode|dataset|WER|CER|Ins|#Ins|vs baseline|" in text
    assert "|asr_am|beam|test|0.0|-|0.0|0|baseline|" in text
    row = next(line for line in text.splitlines() if line.startswith("|llm_asr_x|beam|test|"))
    assert "MP: worse (p" in row and "SI: worse (p" in row
    assert (tmp_path / "exp/llm_asr_x/decode_beam/test/significance_vs_baseline/significance.txt").is_file()
    capsys.readouterr()
    assert results_make_main(["--exp_dirs", "exp/*", "--out", "R2.md", "--baseline", "exp/none/decode_x"]) == 1
    assert "baseline exp/none/decode_x" in capsys.readouterr().err
    # a later run in a checkout without these exp dirs and without the baseline keeps their rows and verdicts
    fresh = tmp_path / "fresh"
    score(ref, good, fresh / "exp" / "llm_asr_new" / "decode_greedy" / "test" / "score_wer")
    (fresh / "RESULTS.md").write_text(text)
    monkeypatch.chdir(fresh)
    assert results_make_main(["--exp_dirs", "exp/*", "--out", "RESULTS.md"]) == 0
    merged = (fresh / "RESULTS.md").read_text()
    assert "|system|decode|dataset|WER|CER|Ins|#Ins|vs baseline|" in merged and "sc_stats" in merged
    assert "|asr_am|beam|test|0.0|-|0.0|0|baseline|" in merged and row in merged
    assert "|llm_asr_new|greedy|test|0.0|-|0.0|0|-|" in merged
