"""espnet_llm.bin.ablation_table on exp dirs scored by the real sclite (espnet_llm.scoring.score)."""
from pathlib import Path

from espnet_llm.bin import ablation_table
from espnet_llm.bin.ablation_table import read_manifest
from espnet_llm.scoring import score
from espnet_llm.trainlog import parse_epoch_line, read_epoch_results, timespan_seconds, train_seconds

REF = {"spk-a": "YES NO ONE", "spk-b": "TWO THREE FOUR", "spk-c": "STOP GO"}
HYPS = {  # system -> hypotheses: stride80 is perfect, stride160 has 1 substitution + 2 insertions
    "stride80": dict(REF),
    "stride160": {"spk-a": "YES NO NO ONE", "spk-b": "TWO TREE FOUR", "spk-c": "STOP GO GO"},
}
EPOCH_LINE = ("[vm] 2026-11-23 01:30:40,643 (trainer:394) INFO: {n}epoch results: [train] iter_time=0.014, "
              "loss=49.328, acc=0.237, train_time=3.082, time={train}, total_count=197, [valid] loss=33.861, "
              "acc={acc}, time={valid}, total_count=8\n")


def make_exp(root: Path, name: str, hyps: dict, log_lines=()) -> Path:
    exp = root / "exp" / f"llm_asr_{name}"
    decode = exp / "decode_llm_greedy_valid.acc.ave" / "test"
    decode.mkdir(parents=True)
    (root / "data" / "test").mkdir(parents=True, exist_ok=True)
    (root / "data" / "test" / "text").write_text("".join(f"{u} {t}\n" for u, t in REF.items()))
    (decode / "text").write_text("".join(f"{u} {t}\n" for u, t in hyps.items()))
    score(root / "data" / "test" / "text", decode / "text", decode / "score_wer", unit="word")
    score(root / "data" / "test" / "text", decode / "text", decode / "score_cer", unit="char")
    (exp / "train.log").write_text("# python3 -m espnet_llm.bin.llm_asr_train ...\n" + "".join(log_lines))
    (exp / "command.txt").write_text(f"./run.sh --stage 9 --stop_stage 9 --llm_asr_tag {name}\n")
    return exp


def test_trainlog_parses_espnet_epoch_lines(tmp_path):
    assert timespan_seconds("10 minutes and 7.26 seconds") == 607.26
    assert timespan_seconds("1 hour, 2 minutes and 3.5 seconds") == 3723.5
    epoch, stats = parse_epoch_line(EPOCH_LINE.format(n=3, train="1 hour, 2 minutes and 3.5 seconds", acc=0.5,
                                                      valid="2 seconds"))
    assert epoch == 3
    assert stats["train"]["loss"] == 49.328 and stats["train"]["time"] == 3723.5
    assert stats["valid"] == {"loss": 33.861, "acc": 0.5, "time": 2.0, "total_count": 8.0}
    assert parse_epoch_line("[vm] (trainer:811) INFO: 1epoch:train:1-10batch: loss=1.0") is None

    exp = tmp_path / "exp"
    exp.mkdir()
    # a resumed run: run.pl keeps the first log as train.1.log; epoch 2 was logged again after the resume
    (exp / "train.1.log").write_text(EPOCH_LINE.format(n=1, train="60 seconds", acc=0.1, valid="1 seconds")
                                     + EPOCH_LINE.format(n=2, train="50 seconds", acc=0.2, valid="1 seconds"))
    (exp / "train.log").write_text(EPOCH_LINE.format(n=2, train="40 seconds", acc=0.3, valid="2 seconds"))
    epochs = read_epoch_results(exp)
    assert list(epochs) == [1, 2] and epochs[2]["valid"]["acc"] == 0.3
    assert train_seconds(exp) == 61 + 42
    (exp / "meta.json").write_text('{"train_wall_s": 123.4}')
    assert train_seconds(exp) == 123.4


def write_manifest(root: Path, rows) -> Path:
    path = root / "exp" / "ablations" / "manifest.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["study\tsystem\texp_dir\tdecode_dir\ttest_set\tcommand", "# grid: ./run_ablations.sh --budget small"]
    lines += ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tables_from_scored_dirs_into_their_own_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log80 = [EPOCH_LINE.format(n=1, train="2 minutes and 0 seconds", acc=0.4, valid="6 seconds")]
    make_exp(tmp_path, "abl_base", HYPS["stride80"], log80)
    make_exp(tmp_path, "abl_stride_stride160", HYPS["stride160"],
             [EPOCH_LINE.format(n=1, train="30 seconds", acc=0.3, valid="6 seconds")])
    dec = "decode_llm_greedy_valid.acc.ave"
    manifest = write_manifest(tmp_path, [
        ("stride", "stride80", "exp/llm_asr_abl_base", f"exp/llm_asr_abl_base/{dec}", "test", "./run.sh --a"),
        ("stride", "stride160", "exp/llm_asr_abl_stride_stride160", f"exp/llm_asr_abl_stride_stride160/{dec}",
         "test", "./run.sh --b"),
        ("stride", "stride320", "exp/llm_asr_abl_stride_stride320", f"exp/llm_asr_abl_stride_stride320/{dec}",
         "test", "./run.sh --c"),
        ("tuning", "lora_r8", "exp/llm_asr_abl_base", f"exp/llm_asr_abl_base/{dec}", "test", "./run.sh --a"),
        ("stride", "stride160", "exp/llm_asr_abl_stride_stride160", f"exp/llm_asr_abl_stride_stride160/{dec}",
         "test", "./run.sh --b2"),  # a re-run of the same system: replaces the first row in place
    ])
    rows, grids = read_manifest(manifest)
    assert [(r.study, r.system) for r in rows] == [("stride", "stride80"), ("stride", "stride160"),
                                                   ("stride", "stride320"), ("tuning", "lora_r8")]
    assert rows[1].command == "./run.sh --b2" and grids == ["./run_ablations.sh --budget small"]

    out = tmp_path / "RESULTS_ablations.md"
    out.write_text("an older report\n")
    assert ablation_table.main(["--manifest", str(manifest), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Ablations\n") and "older" not in text
    stride = text[text.index("## stride"):text.index("## tuning")]
    # stride160: 8 ref words; sclite: 1 substitution + 2 insertions -> WER 3/8 = 37.5%
    assert "|stride80|test|0.0|0.0|0|2.1 min|" in stride
    assert "|stride160|test|37.5|" in stride and "|2|0.6 min|" in stride
    assert "|stride320|test|-|-|-|-|" in stride  # not trained/scored yet
    assert "|lora_r8|test|0.0|0.0|0|2.1 min|" in text[text.index("## tuning"):]
    assert "./run.sh --b2" in stride and "./run.sh --b\n" not in stride
    assert "```bash\n./run_ablations.sh --budget small\n```" in text
    assert ablation_table.main(["--manifest", str(manifest), "--out", str(out)]) == 0
    assert out.read_text() == text  # written whole again: the same report
