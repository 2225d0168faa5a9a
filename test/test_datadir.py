"""Tests of espnet_llm.datadir on small data dirs written in tmp_path."""
from pathlib import Path

import pytest

from espnet_llm import datadir
from espnet_llm.datadir import DataDirError

SPEAKERS = {"fash": ["fash-an251-b", "fash-an252-b", "fash-an253-b"], "fbbh": ["fbbh-an86-b", "fbbh-an87-b"],
            "mblw": ["mblw-an1-b"]}
UTTS = sorted(u for us in SPEAKERS.values() for u in us)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def make_dir(root: Path, utts=UTTS, name="data") -> Path:
    d = root / name
    spk_of = {u: u.split("-")[0] for u in utts}
    write(d / "wav.scp", "".join(f"{u} /corpus/{u}.flac\n" for u in utts))
    write(d / "text", "".join(f"{u} WORDS OF {u.upper()}\n" for u in utts))
    write(d / "utt2spk", "".join(f"{u} {spk_of[u]}\n" for u in utts))
    spk2utt = {}
    for u in utts:
        spk2utt.setdefault(spk_of[u], []).append(u)
    write(d / "spk2utt", "".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    return d


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def problems_of(d: Path, **kwargs) -> str:
    with pytest.raises(DataDirError) as err:
        datadir.validate(d, **kwargs)
    return str(err.value)


# ------------------------------------------------------------------------------------------ validate


def test_validate_accepts_a_valid_dir(tmp_path):
    assert datadir.validate(make_dir(tmp_path)) == []


def test_validate_names_a_missing_required_file(tmp_path):
    d = make_dir(tmp_path)
    (d / "text").unlink()
    assert f"{d / 'text'}: required file is missing" in problems_of(d)
    assert datadir.validate(d, no_text=True) == []
    x = make_dir(tmp_path, name="x")
    assert f"{x / 'feats.scp'}: required file is missing" in problems_of(x, no_feats=False)


def test_validate_names_duplicate_id_and_its_lines(tmp_path):
    d = make_dir(tmp_path)
    rows = lines(d / "text")
    write(d / "text", "\n".join(rows[:2] + [rows[1]] + rows[2:]) + "\n")
    message = problems_of(d)
    assert f"{d / 'text'} line 3: duplicate id fash-an252-b (first on line 2)" in message


def test_validate_names_the_first_unsorted_line(tmp_path):
    d = make_dir(tmp_path)
    rows = lines(d / "utt2spk")
    rows[1], rows[2] = rows[2], rows[1]
    write(d / "utt2spk", "\n".join(rows) + "\n")
    assert f"{d / 'utt2spk'} line 3: not sorted: fash-an252-b comes after fash-an253-b" in problems_of(d)


def test_validate_uses_c_locale_order(tmp_path):
    # In C order upper case sorts before lower case and "-" before digits; a locale-aware sort differs.
    utts = sorted(["Zed-1", "abe-1", "abe-10", "abe-1-x"])
    assert utts == ["Zed-1", "abe-1", "abe-1-x", "abe-10"]
    assert datadir.validate(make_dir(tmp_path, utts=utts)) == []


def test_validate_names_an_empty_transcript(tmp_path):
    d = make_dir(tmp_path)
    rows = lines(d / "text")
    rows[3] = "fbbh-an86-b"
    write(d / "text", "\n".join(rows) + "\n")
    assert f"{d / 'text'} line 4: utterance fbbh-an86-b has an empty transcript" in problems_of(d)


def test_validate_names_the_line_with_non_utf8_bytes(tmp_path):
    d = make_dir(tmp_path)
    write(d / "text", (d / "text").read_bytes().replace(b"WORDS OF FBBH-AN87-B", b"CAF\xe9 LATTE"))
    assert f"{d / 'text'} line 5: not valid UTF-8 (byte 0xe9 at column 16)" in problems_of(d)


def test_validate_names_ids_missing_or_extra(tmp_path):
    d = make_dir(tmp_path)
    write(d / "wav.scp", "".join(f"{u} /corpus/{u}.flac\n" for u in UTTS if u != "fbbh-an86-b"))
    write(d / "text", (d / "text").read_text() + "zzz-1 EXTRA\n")
    message = problems_of(d)
    assert f"{d / 'wav.scp'}: 1 utterance(s) of utt2spk are missing, e.g. fbbh-an86-b" in message
    assert f"{d / 'text'} line 7: utterance zzz-1 is not in utt2spk" in message


def test_validate_names_spk2utt_that_disagrees_with_utt2spk(tmp_path):
    d = make_dir(tmp_path)
    write(d / "spk2utt", "fash fash-an251-b fash-an252-b\nfbbh fbbh-an86-b fbbh-an87-b\nmblw mblw-an1-b\nzz zz-1\n")
    message = problems_of(d)
    assert f"{d / 'spk2utt'} line 1: speaker fash disagrees with utt2spk (e.g. fash-an253-b)" in message
    assert f"{d / 'spk2utt'} line 4: speaker zz has no utterance in utt2spk" in message


def test_validate_lists_every_problem_found(tmp_path):
    d = make_dir(tmp_path)
    (d / "wav.scp").unlink()
    write(d / "text", (d / "text").read_text().replace("WORDS OF MBLW-AN1-B", ""))
    with pytest.raises(DataDirError) as err:
        datadir.validate(d)
    assert len(err.value.problems) == 2
    assert "2 problem(s)" in str(err.value)


def test_validate_warns_when_speaker_is_not_a_prefix(tmp_path):
    d = make_dir(tmp_path)
    write(d / "utt2spk", (d / "utt2spk").read_text().replace("mblw-an1-b mblw", "mblw-an1-b aaa"))
    write(d / "spk2utt", "aaa mblw-an1-b\nfash fash-an251-b fash-an252-b fash-an253-b\nfbbh fbbh-an86-b fbbh-an87-b\n")
    warnings = datadir.validate(d)
    assert warnings[0] == f"{d / 'utt2spk'}: speaker aaa is not a prefix of utterance mblw-an1-b"
    assert "sorting by speaker changes the utterance order" in warnings[1]


def test_validate_checks_segments_against_wav_scp(tmp_path):
    d = make_dir(tmp_path)
    write(d / "wav.scp", "rec1 /corpus/rec1.wav\n")
    write(d / "segments", "".join(f"{u} {'rec1' if i < 5 else 'rec9'} {i}.0 {i}.5\n" for i, u in enumerate(UTTS)))
    assert f"{d / 'segments'} line 6: recording rec9 of utterance mblw-an1-b is not in wav.scp" in problems_of(d)


# ------------------------------------------------------------------------------------------ fix


def test_fix_sorts_drops_and_regenerates_spk2utt(tmp_path):
    d = make_dir(tmp_path)
    original_text = (d / "text").read_bytes()
    write(d / "text", "".join(reversed((d / "text").read_text().splitlines(keepends=True)))
          .replace("WORDS OF FASH-AN252-B", ""))
    write(d / "wav.scp", "".join(f"{u} /corpus/{u}.flac\n" for u in UTTS if u != "mblw-an1-b"))
    write(d / "spk2utt", "garbage x\n")
    write(d / "utt2spk", "".join(f"{u} {u.split('-')[0]}\n" for u in reversed(UTTS)))  # unsorted
    before = {name: (d / name).read_bytes() for name in ("text", "wav.scp", "utt2spk", "spk2utt")}

    report = datadir.fix(d)

    assert report.dropped == {"fash-an252-b": ["empty transcript"], "mblw-an1-b": ["missing from wav.scp"]}
    assert sorted(report.changed_files) == ["spk2utt", "text", "utt2spk", "wav.scp"]
    kept = [u for u in UTTS if u not in report.dropped]
    assert [row.split()[0] for row in lines(d / "text")] == kept
    assert lines(d / "spk2utt") == ["fash fash-an251-b fash-an253-b", "fbbh fbbh-an86-b fbbh-an87-b"]
    assert datadir.validate(d) == []
    assert report.backup_dir == d / ".backup"
    for name in report.changed_files:
        assert (d / ".backup" / name).read_bytes() == before[name]
    assert (d / "text").read_bytes() == b"".join(
        row for row in original_text.splitlines(keepends=True) if not row.startswith((b"fash-an252-b", b"mblw")))


def test_fix_of_a_valid_dir_changes_nothing(tmp_path):
    d = make_dir(tmp_path)
    report = datadir.fix(d)
    assert report.dropped == {} and report.changed_files == [] and report.summary() == "nothing to fix"
    assert not (d / ".backup").exists()


def test_fix_refuses_an_id_repeated_with_different_values(tmp_path):
    d = make_dir(tmp_path)
    write(d / "text", (d / "text").read_text() + "fash-an251-b OTHER WORDS\n")
    with pytest.raises(DataDirError, match=r"text line 7: id fash-an251-b repeats line 1 with a different value"):
        datadir.fix(d)
    assert datadir.read_table(d / "utt2spk") == {u: u.split("-")[0] for u in UTTS}


def test_fix_refuses_to_drop_everything(tmp_path):
    d = make_dir(tmp_path)
    write(d / "wav.scp", "other-1 /x.wav\n")
    with pytest.raises(DataDirError, match="would drop every utterance"):
        datadir.fix(d)
    assert not (d / ".backup").exists()


# ------------------------------------------------------------------------------------------ subset, combine


@pytest.mark.parametrize("mode, expected", [
    ("first", UTTS[:2]), ("last", UTTS[-2:]), ("spread", [UTTS[0], UTTS[3]]),
])
def test_subset_n(tmp_path, mode, expected):
    src = make_dir(tmp_path)
    assert datadir.subset(src, tmp_path / "sub", n=2, mode=mode) == expected
    assert list(datadir.read_table(tmp_path / "sub" / "wav.scp")) == expected
    assert datadir.validate(tmp_path / "sub") == []


def test_subset_shuffle_is_reproducible_with_a_seed(tmp_path):
    src = make_dir(tmp_path)
    picks = {tuple(datadir.subset(src, tmp_path / f"s{seed}", n=3, mode="shuffle", seed=seed)) for seed in range(8)}
    again = datadir.subset(src, tmp_path / "again", n=3, mode="shuffle", seed=5)
    assert again == list(datadir.read_table(tmp_path / "s5" / "text"))
    assert len(picks) > 1 and all(len(p) == 3 and list(p) == sorted(p) for p in picks)


def test_subset_by_utterance_and_speaker_list(tmp_path):
    src = make_dir(tmp_path)
    assert datadir.subset(src, tmp_path / "u", utt_list=["mblw-an1-b", "fash-an252-b", "nope"]) == [
        "fash-an252-b", "mblw-an1-b"]
    assert datadir.subset(src, tmp_path / "s", spk_list=["fbbh"]) == SPEAKERS["fbbh"]
    assert lines(tmp_path / "s" / "spk2utt") == ["fbbh fbbh-an86-b fbbh-an87-b"]
    with pytest.raises(DataDirError, match="cannot take 7 utterance"):
        datadir.subset(src, tmp_path / "big", n=7)


def test_combine_merges_and_rejects_duplicate_ids(tmp_path):
    a = make_dir(tmp_path, utts=UTTS[:3], name="a")
    b = make_dir(tmp_path, utts=UTTS[3:], name="b")
    write(a / "utt2dur", "".join(f"{u} 1.5\n" for u in UTTS[:3]))
    warnings = datadir.combine(tmp_path / "all", [b, a])
    assert warnings == [f"combine: utt2dur is left out: only {a} have it"]
    assert (tmp_path / "all" / "text").read_text() == (make_dir(tmp_path, name="ref") / "text").read_text()
    assert datadir.validate(tmp_path / "all") == []
    with pytest.raises(DataDirError, match=f"utterance id fash-an251-b is in both {a} and {tmp_path / 'c'}"):
        datadir.combine(tmp_path / "bad", [a, make_dir(tmp_path, utts=UTTS[:1], name="c")])


# ------------------------------------------------------------------------------------------ split


def test_split_by_utterance_is_balanced_and_complete(tmp_path):
    d = make_dir(tmp_path)
    parts = datadir.split(d, 4)
    assert parts == [d / "split4" / str(i) for i in range(1, 5)]
    chunks = [list(datadir.read_table(p / "text")) for p in parts]
    assert [len(c) for c in chunks] == [1, 2, 1, 2]
    assert sum(chunks, []) == UTTS
    for part in parts:
        assert datadir.validate(part) == []


def test_split_by_speaker_keeps_speakers_whole(tmp_path):
    d = make_dir(tmp_path)
    parts = datadir.split(d, 2, by_speaker=True)
    assert [lines(p / "spk2utt") for p in parts] == [
        ["fash fash-an251-b fash-an252-b fash-an253-b"],
        ["fbbh fbbh-an86-b fbbh-an87-b", "mblw mblw-an1-b"],
    ]
    with pytest.raises(DataDirError, match="cannot split 3 speaker"):
        datadir.split(d, 4, by_speaker=True)


def test_split_rerun_on_same_input_writes_nothing(tmp_path):
    d = make_dir(tmp_path)
    parts = datadir.split(d, 2)
    mtimes = {p: p.stat().st_mtime_ns for part in parts for p in part.iterdir()}
    for p in mtimes:
        p.write_text(p.read_text())  # same content, new mtime: a rerun must not touch them again
    touched = {p: p.stat().st_mtime_ns for p in mtimes}
    assert datadir.split(d, 2) == parts
    assert {p: p.stat().st_mtime_ns for p in mtimes} == touched
    write(d / "text", (d / "text").read_text().replace("WORDS OF MBLW-AN1-B", "NEW WORDS"))
    datadir.split(d, 2)
    assert lines(parts[1] / "text")[-1] == "mblw-an1-b NEW WORDS"


def test_split_with_segments_keeps_the_recordings_used(tmp_path):
    d = make_dir(tmp_path)
    write(d / "wav.scp", "rec1 /corpus/rec1.wav\nrec2 /corpus/rec2.wav\n")
    write(d / "segments", "".join(f"{u} {'rec1' if i < 3 else 'rec2'} {i}.0 {i}.5\n" for i, u in enumerate(UTTS)))
    assert datadir.validate(d) == []
    parts = datadir.split(d, 2)
    assert [list(datadir.read_table(p / "wav.scp")) for p in parts] == [["rec1"], ["rec2"]]


# ------------------------------------------------------------------------------------------ atomic writes


def test_write_table_is_atomic_and_keeps_permissions(tmp_path):
    path = write(tmp_path / "text", "old contents\n")
    path.chmod(0o640)

    with pytest.raises(UnicodeEncodeError):  # fails half way through writing the temporary file
        datadir.write_text_atomic(path, "a 1\n" * 10000 + "\udcff\n")
    assert path.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text"]
    datadir.write_table(path, {"b": "2", "a": "1", "c": ""})
    assert path.read_text() == "a 1\nb 2\nc\n"
    assert path.stat().st_mode & 0o777 == 0o640
