"""espnet_llm.studies: the measurements of the decoding studies."""
import pytest

from espnet_llm.studies import (CtmWord, boundary_errors, distractors, hotword_recall, is_runaway, join_segments,
                                phrase_count, read_ctm, with_phrases, word_pairs)


def test_read_ctm_orders_words_in_time_and_names_a_bad_line(tmp_path):
    path = tmp_path / "a.ctm"
    path.write_text("u1 1 0.50 0.20 B 0.9\nu1 1 0.10 0.30 A 1.0\n;; a comment\nu2 1 0 0.4 C\n")
    assert read_ctm(path) == {"u1": [CtmWord("A", 0.1, 0.4), CtmWord("B", 0.5, 0.7)], "u2": [CtmWord("C", 0.0, 0.4)]}
    path.write_text("u1 1 0.1 A\n")
    with pytest.raises(ValueError, match=r"a.ctm:1: not a CTM line"):
        read_ctm(path)


def test_word_pairs_pair_only_equal_words_of_a_minimum_edit_alignment():
    assert word_pairs("A B C D".split(), "A X C D E".split()) == [(0, 0), (2, 2), (3, 3)]
    assert word_pairs("A B".split(), "b a".split()) in ([(0, 1)], [(1, 0)])
    assert word_pairs([], "A".split()) == []


def test_boundary_errors_are_the_start_and_end_differences_of_shared_words():
    ref = {"u1": [CtmWord("A", 0.0, 0.5), CtmWord("B", 0.6, 1.0)], "u2": [CtmWord("C", 0.0, 1.0)]}
    hyp = {"u1": [CtmWord("A", 0.1, 0.5), CtmWord("X", 0.6, 0.9)], "u3": [CtmWord("C", 0.0, 1.0)]}
    e = boundary_errors(ref, hyp)
    assert e["utts"] == 1 and e["words"] == 1 and e["ref_words"] == 2
    assert e["start"] == [pytest.approx(0.1)] and e["end"] == [0.0]


def test_hotword_recall_counts_whole_word_occurrences_per_utterance():
    ref = {"a": "ONE THIRTEEN TWO THIRTEEN", "b": "NOVEMBER FIRST", "c": "THIRTEENTH OF JOHN DASHWOOD"}
    hyp = {"a": "ONE THIRTEEN TWO THIRTY", "b": "november first", "c": "THIRTEENTH OF JOHN DASH WOOD"}
    phrases = ["THIRTEEN", "NOVEMBER", "JOHN DASHWOOD"]
    assert phrase_count("THIRTEENTH THIRTEEN", "thirteen") == 1
    assert phrase_count("a john  dashwood b", "JOHN DASHWOOD") == 1
    assert hotword_recall(ref, hyp, phrases) == (2, 4)
    assert with_phrases(ref, phrases) == ["a", "b", "c"]
    assert with_phrases({"x": "NINE"}, phrases) == []


def test_distractors_are_frequent_unseen_long_words_in_a_fixed_order():
    texts = ["Elinor and Marianne; Marianne said. Barton Barton Barton cottage", "Elinor walked. Norland"]
    assert distractors(texts, exclude=["cottage", "Norland"], n=3) == ["BARTON", "ELINOR", "MARIANNE"]
    assert distractors(texts, exclude=[], n=10, min_letters=7) == ["MARIANNE", "COTTAGE", "NORLAND"]


def test_runaway_is_a_repeated_ngram_or_more_words_than_the_audio_holds():
    assert not is_runaway("ONE TWO THREE FOUR", 2.0)
    assert is_runaway("GO GO GO GO", 10.0)
    assert is_runaway("A B A B A B A B", 10.0)
    assert is_runaway(" ".join(f"W{i}" for i in range(13)), 2.0)  # 13 > 5 * 2 + 2 distinct words
    assert not is_runaway("", 0.5)


def test_join_segments_joins_the_hypotheses_of_each_recording_in_time_order():
    segments = {"u1": "r 0.0 1.0", "u3": "r 5.0 6.0", "u2": "r 2.0 3.0", "u4": "s 0 1"}
    hyp = {"u1": "A", "u2": "B", "u3": "C"}
    assert join_segments(hyp, segments) == {"r": "A B C", "s": ""}
