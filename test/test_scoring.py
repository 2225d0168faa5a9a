import json
import logging

import pytest

from espnet_llm import scoring
from espnet_llm.scoring import (find_sctk_tool, normalize_text, parse_sc_stats_unified, read_trn, score,
                                significance_test, to_tokens, write_trn)

# 10 reference words; the hypothesis has TWO -> TOO (sub), FIVE dropped (del), EIGHTY added (ins): WER 3/10.
REF = "u1 ONE TWO THREE FOUR FIVE\nu2 SIX SEVEN EIGHT\nu3 NINE TEN\n"
HYP = "u1 ONE TOO THREE FOUR\nu2 SIX SEVEN EIGHT EIGHTY\nu3 NINE TEN\n"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_score_word_one_sub_one_del_one_ins_over_ten_words(tmp_path):
    result = score(write(tmp_path / "ref", REF), write(tmp_path / "hyp", HYP), tmp_path / "score_wer")
    assert result["Snt"] == 3 and result["Wrd"] == 10
    assert (result["Corr"], result["Sub"], result["Del"], result["Ins"], result["Err"]) == (80.0, 10.0, 10.0,
                                                                                           10.0, 30.0)
    assert result["S.Err"] == 66.7
    assert result["counts"] == {"Corr": 8, "Sub": 1, "Del": 1, "Ins": 1, "Err": 3, "S.Err": 2}
    assert result["missing_hyp"] == []
    assert json.loads((tmp_path / "score_wer" / "result.json").read_text()) == result
    assert (tmp_path / "score_wer" / "ref.trn").read_text().splitlines() == [
        "ONE TWO THREE FOUR FIVE (u1-u1)", "SIX SEVEN EIGHT (u2-u2)", "NINE TEN (u3-u3)"]
    report = (tmp_path / "score_wer" / "result.txt").read_text()
    assert "Sum/Avg" in report and "Scores: (#C #S #D #I) 3 1 1 0" in report


def test_score_char_uses_space_token(tmp_path):
    ref = {"u1": "AB CD"}
    result = score(ref, {"u1": "ABCD"}, tmp_path, unit="char")
    assert (tmp_path / "ref.trn").read_text() == "A B <space> C D (u1-u1)\n"
    assert (tmp_path / "hyp.trn").read_text() == "A B C D (u1-u1)\n"
    assert result["Wrd"] == 5 and result["counts"]["Del"] == 1 and result["Err"] == 20.0
    assert score(ref, {"u1": "AB CE"}, tmp_path, unit="char")["counts"] == {
        "Corr": 4, "Sub": 1, "Del": 0, "Ins": 0, "Err": 1, "S.Err": 1}


def test_missing_hyp_scored_as_empty_and_warned(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="espnet_llm.scoring"):
        result = score({"u1": "A B", "u2": "C D E"}, {"u1": "A B"}, tmp_path)
    assert result["missing_hyp"] == ["u2"]
    assert result["counts"]["Del"] == 3 and result["Err"] == 60.0 and result["Snt"] == 2
    assert "1 of 2 utterances have no hypothesis" in caplog.text and "u2" in caplog.text
    assert (tmp_path / "hyp.trn").read_text().splitlines()[1] == " (u2-u2)"


def test_hyp_ids_not_in_ref_are_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"2 hypothesis ids are not in the reference: x9, x8"):
        score({"u1": "A"}, {"u1": "A", "x9": "B", "x8": "C"}, tmp_path)


def test_duplicate_ids_are_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"ref:2: duplicate utterance id 'u1'"):
        score(write(tmp_path / "ref", "u1 A\nu1 B\n"), {"u1": "A"}, tmp_path / "out")


def test_normalize_upper_and_none(tmp_path):
    ref, hyp = {"u1": "HELLO WORLD"}, {"u1": "hello World"}
    assert score(ref, hyp, tmp_path / "upper")["Err"] == 0.0
    # none keeps the case and makes sclite case-sensitive: both words are substitutions
    assert score(ref, hyp, tmp_path / "none", normalize="none")["counts"]["Sub"] == 2


def test_remove_punct_keeps_inner_apostrophes():
    assert normalize_text("hello, world! don't 'quote'", remove_punct=True) == "HELLO WORLD DON'T QUOTE"
    assert normalize_text("a.b", normalize="none") == "a.b"
    assert to_tokens("AB C", "char") == ["A", "B", "<space>", "C"]


def test_utt2spk_beside_ref_gives_trn_speakers(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write(data / "utt2spk", "fash-an251-b fash\n")
    score(write(data / "text", "fash-an251-b YES\n"), {"fash-an251-b": "YES"}, tmp_path / "out")
    assert (tmp_path / "out" / "ref.trn").read_text() == "YES (fash-fash-an251-b)\n"


def test_find_sctk_tool(tmp_path, monkeypatch):
    real = find_sctk_tool("sclite")
    monkeypatch.setenv("SCLITE", real)
    assert find_sctk_tool("sclite") == real
    assert find_sctk_tool("sc_stats").endswith("sc_stats")
    monkeypatch.delenv("SCLITE")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(scoring, "SCTK_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="apt-get install sctk"):
        find_sctk_tool("sclite")


def make_two_systems(tmp_path, n=30):
    """`good` substitutes one word in every 5th utterance; `bad` substitutes one and drops one in every utterance.

    The errors sit apart, with words both systems got right between them: MAPSSWE segments need that buffer
    (packed errors in short utterances give it no segments, and p=1.000).
    """
    words = "ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT GOLF HOTEL INDIA JULIET".split()
    ref, good, bad = {}, {}, {}
    for i in range(n):
        uttid = f"spk{i % 3}-u{i:02d}"
        sentence = [words[(i + j) % 10] for j in range(8)]
        ref[uttid] = sentence
        good[uttid] = [("ZULU" if j == 4 and i % 5 == 0 else w) for j, w in enumerate(sentence)]
        bad[uttid] = [("ZULU" if j == 1 else w) for j, w in enumerate(sentence) if j != 5]
    spk = {u: u.split("-")[0] for u in ref}
    paths = []
    for name, texts in (("ref", ref), ("good", good), ("bad", bad)):
        write_trn(tmp_path / f"{name}.in.trn", texts, spk)
        paths.append(tmp_path / f"{name}.in.trn")
    return paths


def test_significance_test_finds_the_better_system(tmp_path):
    ref_trn, good_trn, bad_trn = make_two_systems(tmp_path)
    result = significance_test(ref_trn, [bad_trn, good_trn], ["bad", "good"], tmp_path / "sig")
    assert result["better"] == "good"
    assert result["summaries"]["good"]["counts"]["Err"] == 6 and result["summaries"]["bad"]["counts"]["Err"] == 60
    verdicts = {t["test"]: (t["better"], t["p"], t["level"]) for t in result["tests"]}
    assert verdicts == {"MP": ("good", "<0.001", "***"), "SI": ("good", "<0.001", "***")}
    text = (tmp_path / "sig" / "significance.txt").read_text()
    assert text.startswith("# bad 25.0% (60 errors) vs good 2.5% (6 errors); MP: good better (p<0.001 ***)")
    assert "Matched Pair Sentence Segment (Word Error) (MP): good better at p=0.05" in text
    assert read_trn(tmp_path / "sig" / "ref.trn")["spk0-spk0-u00"] == (
        "ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT GOLF HOTEL")


def test_significance_sign_test_over_three_speakers_has_no_power(tmp_path):
    ref_trn, good_trn, bad_trn = make_two_systems(tmp_path)
    result = significance_test(ref_trn, [good_trn, bad_trn], ["good", "bad"], tmp_path / "sig",
                               sign_unit="speaker")
    verdicts = {t["test"]: (t["significant"], t["p"]) for t in result["tests"]}
    assert verdicts == {"MP": (True, "<0.001"), "SI": (False, "0.250")}


def test_significance_identical_systems_and_bad_names(tmp_path):
    ref_trn, good_trn, _ = make_two_systems(tmp_path, n=10)
    result = significance_test(ref_trn, [good_trn, good_trn], ["a", "b"], tmp_path / "sig")
    assert result["better"] is None
    assert [(t["significant"], t["p"]) for t in result["tests"]] == [(False, "1.000"), (False, "1.000")]
    with pytest.raises(ValueError, match="must differ"):
        significance_test(ref_trn, [good_trn, good_trn], ["a", "a"], tmp_path / "sig")


def test_parse_sc_stats_unified_rejects_reports_without_verdicts():
    with pytest.raises(ValueError, match="no test verdicts"):
        parse_sc_stats_unified("|  nothing here  |\n", ["a", "b"])


def test_utterance_sign_test_is_exact_with_many_ties(tmp_path):
    """130 utterances, the second system better on 28 and worse on 19 (83 ties): binomial p = 0.243, not
    significant (sctk's own sign test said p < 0.001 here)."""
    words = ["ALPHA", "BRAVO", "CHARLIE", "DELTA"]
    ref = {f"s{i % 5}-u{i:03d}": " ".join(words) for i in range(130)}
    first, second = dict(ref), dict(ref)
    ids = sorted(ref)
    for u in ids[:28]:
        first[u] = "ALPHA BRAVO CHARLIE"  # second better
    for u in ids[28:47]:
        second[u] = "ALPHA BRAVO"  # second worse
    paths = []
    for name, texts in (("ref", ref), ("one", first), ("two", second)):
        path = tmp_path / f"{name}.trn"
        write_trn(path, {u: t.split() for u, t in texts.items()}, {})
        paths.append(path)
    result = significance_test(paths[0], paths[1:], ["one", "two"], tmp_path / "sig")
    sign = next(t for t in result["tests"] if t["test"] == "SI")
    assert (sign["significant"], sign["p"], sign["better"]) == (False, "0.243", None)
    assert "fewer errors on 28, more on 19, 83 ties" in sign["name"]


def test_control_characters_of_a_hypothesis_separate_words_and_sclite_scores_it(tmp_path):
    """A byte-level BPE LLM can emit any byte: NUL or other C0 characters must not end sclite's reading."""
    assert normalize_text("ONE\x00TWO\x07 THREE\x7f", "none") == "ONE TWO THREE"
    result = score(write(tmp_path / "ref", "u1 ONE TWO THREE\n"), write(tmp_path / "hyp", "u1 ONE\x00TWO\x19 X\n"),
                   tmp_path / "score_wer")
    assert result["Wrd"] == 3 and result["counts"]["Corr"] == 2 and result["counts"]["Sub"] == 1
