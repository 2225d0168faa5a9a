import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from espnet_llm.bin import wer_score

REPO = Path(__file__).resolve().parents[2]
REF = "u1 ONE TWO THREE FOUR FIVE\nu2 SIX SEVEN EIGHT\nu3 NINE TEN\n"
HYP = "u1 one too three four\nu2 six seven eight eighty\n"  # u3 missing; 1 sub, 1 del, 1 ins + 2 del (u3)


def usage_commands(module):
    """The `python -m ...` commands of a Usage docstring, continuation lines joined."""
    text = module.__doc__.split("Usage:")[1].split("\n\n")[0].replace("\\\n", " ")
    return [shlex.split(line)[3:] for line in text.splitlines() if line.strip().startswith("python -m")]


def test_usage_commands_parse():
    commands = usage_commands(wer_score)
    assert len(commands) == 2
    args = wer_score.get_parser().parse_args(commands[1])
    assert (args.units, args.normalize, args.remove_punct) == (["word"], "none", True)


def test_wer_score_cli_writes_score_wer_and_score_cer(tmp_path):
    (tmp_path / "ref").write_text(REF)
    (tmp_path / "hyp").write_text(HYP)
    proc = subprocess.run([sys.executable, "-m", "espnet_llm.bin.wer_score", "--ref", "ref", "--hyp", "hyp",
                           "--out_dir", "decode/test"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    # words: 10 ref; sub TWO, del FIVE, ins EIGHTY, del NINE TEN -> 5 errors
    assert proc.stdout.splitlines()[0] == (
        "WER 50.0% [Snt 3, words 10: sub 1, del 3, ins 1] -> decode/test/score_wer/result.txt")
    assert "no hypothesis and are scored as empty: u3" in proc.stderr
    for name in ("score_wer", "score_cer"):
        assert sorted(p.name for p in (tmp_path / "decode/test" / name).iterdir()) == [
            "hyp.trn", "ref.trn", "result.json", "result.txt"]
    cer = json.loads((tmp_path / "decode/test/score_cer/result.json").read_text())
    # 46 chars; TWO->TOO 1 sub, <space>FIVE 5 del, <space>EIGHTY 7 ins, NINE<space>TEN 8 del
    assert cer["counts"] == {"Corr": 32, "Sub": 1, "Del": 13, "Ins": 7, "Err": 21, "S.Err": 3}
    assert cer["missing_hyp"] == ["u3"]


def test_wer_score_unknown_hyp_ids_fail(tmp_path, capsys):
    (tmp_path / "ref").write_text(REF)
    (tmp_path / "hyp").write_text(HYP + "zz9 EXTRA\n")
    assert wer_score.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"),
                           "--out_dir", str(tmp_path / "out"), "--units", "word"]) == 1
    assert "wer_score: error: 1 hypothesis ids are not in the reference: zz9" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["ref", "hyp"])
def test_wer_score_names_file_and_line_of_bytes_that_are_not_utf8(tmp_path, capsys, which):
    (tmp_path / "ref").write_text(REF)
    (tmp_path / "hyp").write_text(HYP)
    with open(tmp_path / which, "ab") as f:
        f.write(b"u9 CAF\xc9\n")  # Latin-1
    lines = len((tmp_path / which).read_bytes().splitlines())
    assert wer_score.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"),
                           "--out_dir", str(tmp_path / "out"), "--units", "word"]) == 1
    assert (f"wer_score: error: {tmp_path / which} line {lines}: not valid UTF-8 (byte 0xc9 at column 7)"
            in capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_wer_score_remove_punct_and_case(tmp_path, capsys):
    (tmp_path / "ref").write_text("u1 HELLO WORLD\n")
    (tmp_path / "hyp").write_text("u1 Hello, world!\n")
    argv = ["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), "--units", "word"]
    assert wer_score.main(argv + ["--out_dir", str(tmp_path / "a"), "--remove_punct"]) == 0
    assert wer_score.main(argv + ["--out_dir", str(tmp_path / "b")]) == 0
    assert wer_score.main(argv + ["--out_dir", str(tmp_path / "c"), "--normalize", "none", "--remove_punct"]) == 0
    assert [line.split(" [")[0] for line in capsys.readouterr().out.splitlines()] == [
        "WER 0.0%", "WER 100.0%", "WER 100.0%"]
    assert (tmp_path / "a/score_wer/hyp.trn").read_text() == "HELLO WORLD (u1-u1)\n"
    assert (tmp_path / "c/score_wer/hyp.trn").read_text() == "Hello world (u1-u1)\n"
