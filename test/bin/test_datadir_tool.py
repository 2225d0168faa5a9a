"""Tests of espnet_llm.bin.datadir_tool and the utils/*.sh wrappers that call it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from espnet_llm import datadir
from espnet_llm.bin.datadir_tool import main

REPO = Path(__file__).resolve().parents[2]
UTTS = ["a-1", "a-2", "b-1", "b-2", "b-3"]


def make_dir(root: Path, name: str = "data", utts=UTTS) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("".join(f"{u} /corpus/{u}.wav\n" for u in utts))
    (d / "text").write_text("".join(f"{u} HELLO {u.upper()}\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in utts))
    speakers = sorted({u[0] for u in utts})
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(u for u in utts if u[0] == s)}\n" for s in speakers))
    return d


def run_script(script: str, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([str(REPO / "utils" / script), *map(str, args)], input=stdin, capture_output=True,
                          text=True, env=env, check=False)


def test_validate_reports_success_and_errors(tmp_path, capsys):
    d = make_dir(tmp_path)
    assert main(["validate", str(d)]) == 0
    assert f"successfully validated data directory {d}" in capsys.readouterr().err
    (d / "text").write_text((d / "text").read_text().replace("HELLO B-2", ""))
    assert main(["validate", str(d)]) == 1
    assert f"{d / 'text'} line 4: utterance b-2 has an empty transcript" in capsys.readouterr().err
    assert main(["validate", "--feats", str(make_dir(tmp_path, "x"))]) == 1
    assert "feats.scp: required file is missing" in capsys.readouterr().err


def test_fix_prints_what_it_dropped(tmp_path, capsys):
    d = make_dir(tmp_path)
    (d / "wav.scp").write_text("".join(f"{u} /corpus/{u}.wav\n" for u in UTTS if u != "a-2"))
    assert main(["fix", str(d)]) == 0
    err = capsys.readouterr().err
    assert "dropped 1 utterance(s)" in err and "a-2: missing from wav.scp" in err
    assert list(datadir.read_table(d / "text")) == ["a-1", "b-1", "b-2", "b-3"]


def test_subset_forms(tmp_path):
    d = make_dir(tmp_path)
    assert main(["subset", "--last", str(d), "2", str(tmp_path / "last2")]) == 0
    assert list(datadir.read_table(tmp_path / "last2" / "utt2spk")) == ["b-2", "b-3"]
    (tmp_path / "ids").write_text("b-1\na-2 anything after the id\n")
    assert main(["subset", "--utt-list", str(tmp_path / "ids"), str(d), str(tmp_path / "listed")]) == 0
    assert list(datadir.read_table(tmp_path / "listed" / "text")) == ["a-2", "b-1"]
    with pytest.raises(SystemExit):
        main(["subset", str(d), str(tmp_path / "no_n")])


def test_split_and_utt2spk_to_spk2utt(tmp_path, capsys):
    d = make_dir(tmp_path)
    assert main(["split", "--per-spk", str(d), "2"]) == 0
    assert (d / "split2" / "1" / "spk2utt").read_text() == "a a-1 a-2\n"
    capsys.readouterr()
    assert main(["utt2spk_to_spk2utt", str(d / "utt2spk")]) == 0
    assert capsys.readouterr().out == (d / "spk2utt").read_text()


def test_shell_wrappers_call_the_tool(tmp_path):
    a = make_dir(tmp_path, "a", UTTS[:2])
    b = make_dir(tmp_path, "b", UTTS[2:])
    result = run_script("combine_data.sh", tmp_path / "all", a, b)
    assert result.returncode == 0, result.stderr
    assert run_script("validate_data_dir.sh", tmp_path / "all").returncode == 0
    result = run_script("split_data.sh", tmp_path / "all", 2)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "all" / "split2" / "2" / "text").read_text() == "b-1 HELLO B-1\nb-2 HELLO B-2\nb-3 HELLO B-3\n"
    result = run_script("utt2spk_to_spk2utt.sh", stdin="x-2 x\nx-1 x\ny-1 y\n")
    assert result.stdout == "x x-1 x-2\ny y-1\n"
    result = run_script("combine_data.sh", tmp_path / "dup", a, a)
    assert result.returncode == 1
    assert f"combine_data.sh: error: combine: utterance id a-1 is in both {a} and {a}" in result.stderr


def test_shell_wrapper_help_names_the_script():
    result = run_script("subset_data_dir.sh", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: subset_data_dir.sh [-h] [--first | --last | --shuffle] [--seed SEED]")


def test_resample_writes_16k_mono_flac_copies_and_resumes(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    src = make_dir(tmp_path, utts=["a-1", "a-2"])
    t = np.arange(8000) / 8000
    sf.write(tmp_path / "a-1.wav", np.sin(2 * np.pi * 440 * t).astype(np.float32) * 0.5, 8000)
    stereo = np.stack([np.sin(2 * np.pi * 300 * np.arange(44100) / 44100)] * 2, axis=1).astype(np.float32) * 0.5
    sf.write(tmp_path / "a-2.wav", stereo, 44100)
    (src / "wav.scp").write_text(f"a-1 {tmp_path / 'a-1.wav'}\na-2 {tmp_path / 'a-2.wav'}\n")
    assert main(["resample", "--fs", "16000", str(src), str(tmp_path / "out")]) == 0
    assert "2 recording(s)" in capsys.readouterr().err
    out = tmp_path / "out"
    scp = datadir.read_table(out / "wav.scp")
    for rec, seconds in (("a-1", 1.0), ("a-2", 1.0)):
        info = sf.info(scp[rec])
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        assert abs(info.frames / 16000 - seconds) < 1e-3
    assert (out / "text").read_text() == (src / "text").read_text()
    datadir.validate(out)
    first = Path(scp["a-1"]).stat().st_mtime_ns
    assert main(["resample", str(src), str(out)]) == 0  # a rerun keeps what is written
    assert Path(scp["a-1"]).stat().st_mtime_ns == first
    (src / "wav.scp").write_text(f"a-1 {tmp_path / 'missing.wav'}\na-2 {tmp_path / 'a-2.wav'}\n")
    assert main(["resample", str(src), str(tmp_path / "out2")]) == 1
    assert f"error: utterance a-1: audio file {tmp_path / 'missing.wav'} does not exist" in capsys.readouterr().err


def test_concat_makes_one_recording_a_speaker_with_the_reference_segments(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    src = make_dir(tmp_path, utts=["a-1", "a-2", "b-1"])
    for i, u in enumerate(["a-1", "a-2", "b-1"]):
        sf.write(tmp_path / f"{u}.wav", np.full(16000 * (i + 1), 0.1, np.float32), 16000)
    (src / "wav.scp").write_text("".join(f"{u} {tmp_path / u}.wav\n" for u in ["a-1", "a-2", "b-1"]))
    out = tmp_path / "long"
    assert main(["concat", "--pause", "0.5", str(src), str(out)]) == 0
    assert "2 recording(s)" in capsys.readouterr().err
    datadir.validate(out)
    assert datadir.read_table(out / "text") == {"a-long": "HELLO A-1 HELLO A-2", "b-long": "HELLO B-1"}
    assert datadir.read_table(out / "reference_segments") == {
        "a-1": "a-long 0.000 1.000", "a-2": "a-long 1.500 3.500", "b-1": "b-long 0.000 3.000"}
    wav, fs = sf.read(datadir.read_table(out / "wav.scp")["a-long"])
    assert fs == 16000 and len(wav) == 16000 * 3.5 and np.all(wav[16000:24000] == 0)
    out = tmp_path / "all"
    assert main(["concat", "--single", "--pause", "0.5", str(src), str(out)]) == 0
    datadir.validate(out)
    assert datadir.read_table(out / "text") == {"all-long": "HELLO A-1 HELLO A-2 HELLO B-1"}
    assert datadir.read_table(out / "reference_segments")["b-1"] == "all-long 4.000 7.000"
    assert len(sf.read(datadir.read_table(out / "wav.scp")["all-long"])[0]) == 16000 * 7
