import os
import subprocess
import sys
from pathlib import Path

import pytest

from espnet_llm.bin import significance_test, wer_score

REPO = Path(__file__).resolve().parents[2]
WORDS = "ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT GOLF HOTEL INDIA JULIET".split()


def write_texts(tmp_path, n=30):
    """Kaldi texts: `good` substitutes one word in every 5th utterance, `bad` substitutes one and drops one in all."""
    ref, good, bad = [], [], []
    for i in range(n):
        uttid = f"spk{i % 3}-u{i:02d}"
        sentence = [WORDS[(i + j) % 10] for j in range(8)]
        ref.append(f"{uttid} {' '.join(sentence)}\n")
        good.append(f"{uttid} {' '.join('ZULU' if j == 4 and i % 5 == 0 else w for j, w in enumerate(sentence))}\n")
        bad.append(f"{uttid} {' '.join('ZULU' if j == 1 else w for j, w in enumerate(sentence) if j != 5)}\n")
    for name, lines in (("ref", ref), ("good", good), ("bad", bad)):
        (tmp_path / name).write_text("".join(lines))


def test_usage_commands_parse():
    text = significance_test.__doc__.split("Usage:")[1].split("\n\n")[0].replace("\\\n", " ")
    commands = [line.split()[3:] for line in text.splitlines() if line.strip().startswith("python -m")]
    parsed = [significance_test.get_parser().parse_args(c) for c in commands]
    assert [p.names for p in parsed] == [["conformer", "llm_asr"], ["conformer", "llm_asr"]]
    assert parsed[0].hyps and parsed[1].score_dirs


def test_significance_from_texts_cli(tmp_path):
    write_texts(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "espnet_llm.bin.significance_test", "--ref", "ref",
                           "--hyps", "bad", "good", "--names", "bad", "good", "--out_dir", "sig"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("bad 25.0% (60 errors) vs good 2.5% (6 errors); MP: good better (p<0.001 ***); "
                           "SI: good better (p<0.001 ***)\n")
    report = (tmp_path / "sig" / "significance.txt").read_text()
    assert "fewer errors: good" in report and "sign test unit: utterance" in report
    assert "Composite Report of All Significance Tests" in report
    assert (tmp_path / "sig" / "input" / "ref.trn").read_text().startswith(
        "ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT GOLF HOTEL (spk0-u00-spk0-u00)\n")


def test_significance_from_score_dirs(tmp_path, capsys):
    write_texts(tmp_path)
    for name in ("good", "bad"):
        wer_score.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / name),
                        "--out_dir", str(tmp_path / f"decode_{name}"), "--units", "word"])
    capsys.readouterr()
    assert significance_test.main(["--score_dirs", str(tmp_path / "decode_good/score_wer"),
                                   str(tmp_path / "decode_bad/score_wer"),
                                   "--names", "good", "bad", "--out_dir", str(tmp_path / "sig"),
                                   "--sign_unit", "speaker"]) == 0
    # three speakers: the per-speaker sign test cannot reach p<0.05 (best is 2 * 0.5**3), MAPSSWE can
    assert capsys.readouterr().out == ("good 2.5% (6 errors) vs bad 25.0% (60 errors); MP: good better "
                                       "(p<0.001 ***); SI: no significant difference (p=0.250)\n")


def test_significance_rejects_mismatched_references(tmp_path, capsys):
    write_texts(tmp_path)
    wer_score.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "good"),
                    "--out_dir", str(tmp_path / "a"), "--units", "word"])
    (tmp_path / "ref10").write_text("".join((tmp_path / "ref").read_text().splitlines(True)[:10]))
    (tmp_path / "bad10").write_text("".join((tmp_path / "bad").read_text().splitlines(True)[:10]))
    wer_score.main(["--ref", str(tmp_path / "ref10"), "--hyp", str(tmp_path / "bad10"),
                    "--out_dir", str(tmp_path / "b"), "--units", "word"])
    with pytest.raises(SystemExit):
        significance_test.main(["--score_dirs", str(tmp_path / "a/score_wer"), str(tmp_path / "b/score_wer"),
                                "--out_dir", str(tmp_path / "sig")])
    assert "were scored on different references" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        significance_test.main(["--hyps", str(tmp_path / "good"), str(tmp_path / "bad"),
                                "--out_dir", str(tmp_path / "sig")])
    assert "--hyps needs --ref" in capsys.readouterr().err
    assert not (tmp_path / "sig").exists()
