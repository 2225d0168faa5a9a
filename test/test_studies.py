"""espnet_llm.studies: the measurements of the decoding studies."""
import pytest

from espnet_llm.studies import (CtmWord, best_setting, boundary_errors, command_options, distractors, hotword_recall,
                                is_runaway, join_segments, kaldi_words, phrase_count, rare_words, read_ctm,
                                with_phrases, word_pairs)


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


def test_rare_words_are_the_words_training_has_at_most_so_often_in_order_of_first_occurrence():
    dev = kaldi_words("d1 APRIL FIRST\nd2 may thirtieth first\nd3 ENTER\n")
    assert dev == ["APRIL", "FIRST", "MAY", "THIRTIETH", "FIRST", "ENTER"]
    train = kaldi_words("t1 FIRST FIRST ENTER\nt2 MAY MAY THIRTIETH\nt3 FIRST ENTER ENTER\n")
    assert rare_words(dev, train) == ["APRIL"]
    assert rare_words(dev, train, max_count=1) == ["APRIL", "THIRTIETH"]
    assert rare_words(dev, train, max_count=2) == ["APRIL", "MAY", "THIRTIETH"]


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


def test_best_setting_is_the_lowest_wer_and_on_a_tie_the_largest_value():
    assert best_setting({"0.4": 12.0, "0.6": 9.5, "0.8": 11.0}) == "0.6"
    assert best_setting({"0.4": 9.5, "0.8": 9.5, "0.6": 10.0}) == "0.8"
    assert best_setting({"2": 9.5, "4": 9.5, "6": 10.0}, ties="smallest") == "2"
    with pytest.raises(ValueError, match="no setting"):
        best_setting({})
    with pytest.raises(ValueError, match="ties must be"):
        best_setting({"2": 1.0}, ties="middle")


def test_command_options_picks_the_named_options_of_a_command_line():
    command = ("python -m espnet_llm.bin.llm_asr_inference --config c.yaml --long_form true --max_segment_seconds 30 "
               "--merge_segment_seconds 8 --split_pause_seconds 0.6\n")
    names = ("--merge_segment_seconds", "--split_pause_seconds")
    assert command_options(command, names) == "--merge_segment_seconds 8 --split_pause_seconds 0.6"
    assert command_options("python -m x --long_form false", names) == ""


def test_the_report_chooses_the_split_pause_of_the_lowest_dev_wer(tmp_path, capsys):
    """`studies_report --choose_split_pause`: the grid's decodes of dev_long scored by sclite against its joined text;
    a value outside --split_pause_grid or an unfinished decode is not a candidate."""
    from espnet_llm.bin.studies_report import main

    data = tmp_path / "data" / "dev_long"
    data.mkdir(parents=True)
    (data / "text").write_text("spk1-long A B C D\nspk2-long E F\n")
    hyps = {"0.4": "spk1-long A B\nspk2-long E F\n", "0.6": "spk1-long A B C D\nspk2-long E X\n",
            "0.8": "spk1-long A B C D\nspk2-long E X\n", "1.0": "spk1-long A B C D\nspk2-long E F\n"}
    studies = tmp_path / "studies"
    for value, hyp in hyps.items():
        recog = studies / f"longform_greedy_pause{value}" / "dev_long" / "1best_recog"
        recog.mkdir(parents=True)
        (recog / "text").write_text(hyp)
    (studies / "longform_greedy_pause0.2" / "dev_long").mkdir(parents=True)  # not decoded
    args = ["--studies_dir", str(studies), "--data_root", str(tmp_path / "data"), "--choose_split_pause"]
    assert main(args + ["--split_pause_grid", "0.2", "0.4", "0.6", "0.8"]) == 0
    out = capsys.readouterr()
    assert out.out == "0.8\n"  # 0.6 and 0.8 tie at 1 error in 6 words: the longer pause
    assert "0.4: 33.3, 0.6: 16.7, 0.8: 16.7; chosen 0.8" in out.err
    assert main(args) == 0 and capsys.readouterr().out == "1.0\n"  # every decoded value
    with pytest.raises(SystemExit, match="no decodes of dev_long"):
        main(args + ["--split_pause_grid", "0.3"])


def test_the_report_puts_the_pause_grid_and_the_chosen_pause_beside_the_merge_rows(tmp_path):
    """The long-form table of `studies_report` on made-up decode dirs: the dev grid's rows (one marked chosen), and
    each long test set's 8-s merge row followed by its row with the chosen --split_pause_seconds."""
    import json

    import numpy as np
    import soundfile as sf

    from espnet_llm.bin.studies_report import main

    def data_dir(name, texts, seconds, segments=None):
        d = tmp_path / "data" / name
        (d / "audio").mkdir(parents=True)
        for utt in texts:
            sf.write(d / "audio" / f"{utt}.wav", np.zeros(int(seconds * 16000), np.float32), 16000)
        (d / "wav.scp").write_text("".join(f"{u} {d / 'audio' / u}.wav\n" for u in texts))
        (d / "text").write_text("".join(f"{u} {t}\n" for u, t in texts.items()))
        if segments:
            (d / "reference_segments").write_text("".join(f"{u} {v}\n" for u, v in segments.items()))

    def decode(path, texts, options="", segments=0):
        (path / "1best_recog").mkdir(parents=True)
        (path / "1best_recog" / "text").write_text("".join(f"{u} {t}\n" for u, t in texts.items()))
        (path / "1best_recog" / "segments").write_text("".join(f"r-{i} r {i}.0 {i}.5\n" for i in range(segments)))
        (path / "meta.json").write_text(json.dumps({"decode_s": 1.0, "decode_peak_rss_gib": 1.25}))
        (path / "command.txt").write_text(f"python -m espnet_llm.bin.llm_asr_inference --config c.yaml {options}\n")

    for base in ("test", "dev"):
        data_dir(base, {"u1": "A B", "u2": "C D"}, 2.0)
        data_dir(f"{base}_long", {"r": "A B C D"}, 5.0, {"u1": "r 0.0 2.0", "u2": "r 3.0 5.0"})
    studies = tmp_path / "studies"
    for base in ("test", "dev"):
        decode(studies / "segments_greedy" / base, {"u1": "A B", "u2": "C D"}, "--long_form false")
    merge = "--long_form true --max_segment_seconds 30 --merge_segment_seconds 8"
    decode(studies / "longform_greedy" / "test_long", {"r": "A B"}, merge, segments=1)
    decode(studies / "longform_pause_greedy" / "test_long", {"r": "A B C D"}, f"{merge} --split_pause_seconds 0.8", 2)
    decode(studies / "longform_greedy_pause0.4" / "dev_long", {"r": "A B C"}, f"{merge} --split_pause_seconds 0.4", 3)
    decode(studies / "longform_greedy_pause0.8" / "dev_long", {"r": "A B C D"}, f"{merge} --split_pause_seconds 0.8", 2)
    out = tmp_path / "RESULTS_studies.md"
    assert main(["--studies_dir", str(studies), "--data_root", str(tmp_path / "data"), "--long_sets", "test",
                 "--split_pause_grid", "0.4", "0.8", "--out", str(out)]) == 0
    table = [line for line in out.read_text().split("## Long recordings", 1)[1].split("\n## ", 1)[0].splitlines()
             if line.startswith("|")]
    assert table[0].endswith("|peak RSS long-form (GiB)|options|") and table[1] == "|" + "---|" * 12
    assert table[2:] == [
        "|dev_long|1|0.1|3|0.0|25.0|25.0|0.250|0.200|1.25|1.25|"
        "`--max_segment_seconds 30 --merge_segment_seconds 8 --split_pause_seconds 0.4` (dev grid)|",
        "|dev_long|1|0.1|2|0.0|0.0|0.0|0.250|0.200|1.25|1.25|"
        "`--max_segment_seconds 30 --merge_segment_seconds 8 --split_pause_seconds 0.8` (dev grid: chosen)|",
        "|test_long|1|0.1|1|0.0|50.0|50.0|0.250|0.200|1.25|1.25|`--max_segment_seconds 30 --merge_segment_seconds 8`|",
        "|test_long|1|0.1|2|0.0|0.0|0.0|0.250|0.200|1.25|1.25|"
        "`--max_segment_seconds 30 --merge_segment_seconds 8 --split_pause_seconds 0.8`|"]
    assert "among 0.4, 0.8 s: dev WER 25.0, 0.0; the lowest, 0.8 s" in out.read_text()


def test_the_word_time_report_names_the_am_that_aligned_the_references():
    from pathlib import Path

    from espnet_llm.bin.studies_report import am_of

    assert am_of(Path("exp/asr_conformer/align_valid.acc.ave/test/ctm")) == "exp/asr_conformer"
    assert am_of(Path("/x/ref.ctm")) == "/x/ref.ctm"


def test_the_fallback_table_has_a_row_per_mode_at_the_threshold_of_its_lowest_dev_wer(tmp_path):
    """`studies_report`'s fallback section on made-up decode dirs: `none`, then `joint` and `ctc`, each at the
    threshold of its lowest dev WER (a tie: the larger threshold), with WER, runaways and fallbacks per set."""
    import numpy as np
    import soundfile as sf

    from espnet_llm.bin.studies_report import main

    for name, texts in (("dev", {"u1": "A B", "u2": "C D"}), ("noise", {"n1": None})):
        d = tmp_path / "data" / name
        d.mkdir(parents=True)
        sf.write(d / "a.wav", np.zeros(16000, np.float32), 16000)
        (d / "wav.scp").write_text("".join(f"{u} {d / 'a.wav'}\n" for u in texts))
        if name == "dev":
            (d / "text").write_text("".join(f"{u} {t}\n" for u, t in texts.items()))
    studies = tmp_path / "studies"

    def decode(study, dset, hyps, fell=()):
        recog = studies / study / dset / "1best_recog"
        recog.mkdir(parents=True)
        (recog / "text").write_text("".join(f"{u} {t}\n" for u, t in hyps.items()))
        (recog / "fallback").write_text("".join(f"{u} {'loop' if u in fell else '-'}\n" for u in hyps))

    decode("fallback_none", "dev", {"u1": "A B", "u2": "C X"})
    decode("fallback_none", "noise", {"n1": "X X X X X X X X X"})
    decode("fallback_joint_t0.5", "dev", {"u1": "A B", "u2": "C D"}, ["u2"])
    decode("fallback_joint_t0.8", "dev", {"u1": "A X", "u2": "C D"}, ["u2"])
    decode("fallback_joint_t0.5", "noise", {"n1": "X"}, ["n1"])
    decode("fallback_ctc_t0.5", "dev", {"u1": "A B", "u2": "C X"})
    decode("fallback_ctc_t0.8", "dev", {"u1": "A B", "u2": "C X"})
    decode("fallback_ctc_t0.8", "noise", {"n1": ""}, ["n1"])
    out = tmp_path / "R.md"
    assert main(["--studies_dir", str(studies), "--data_root", str(tmp_path / "data"), "--fallback_sets", "dev",
                 "noise", "--out", str(out)]) == 0
    section = out.read_text().split("## CTC fallback against hallucination", 1)[1]
    assert "`joint` among 0.5, 0.8 (dev WER 0.0, 25.0); `ctc` among 0.5, 0.8 (dev WER 25.0, 25.0)" in section
    assert [line for line in section.splitlines() if line.startswith("|")] == [
        "|fallback|dev|noise|", "|---|---|---|",
        "|none|WER 25.0, runaway 0/2|non-empty 1/1, runaway 1/1|",
        "|joint, threshold 0.5|WER 0.0, runaway 0/2, fell back 1|non-empty 1/1, runaway 0/1, fell back 1|",
        "|ctc, threshold 0.8|WER 25.0, runaway 0/2, fell back 0|non-empty 0/1, runaway 0/1, fell back 1|"]


def test_the_report_chooses_the_hotword_bonus_of_the_lowest_dev_wer_and_shows_its_grid(tmp_path, capsys):
    """`studies_report --choose_hotword_bonus`: the grid's decodes of dev with its rare words, the lowest WER (ties: the
    smallest bonus); the report shows the grid with the rare words found, and the bonus of each test decode."""
    from espnet_llm.bin.studies_report import main

    data = tmp_path / "data"
    for name, text in (("dev", "d1 APRIL FIRST\nd2 MAY SIXTH\n"), ("test", "t1 NOVEMBER NINTH\nt2 ONE TWO\n")):
        (data / name).mkdir(parents=True)
        (data / name / "text").write_text(text)
    (data / "hotwords").mkdir()
    (data / "hotwords" / "dev_rare.txt").write_text("APRIL\nMAY\n")
    (data / "hotwords" / "biased.txt").write_text("NOVEMBER\n")
    studies = tmp_path / "studies"

    def decode(study, dset, hyp, bonus=None):
        recog = studies / study / dset / "1best_recog"
        recog.mkdir(parents=True)
        (recog / "text").write_text(hyp)
        if bonus is not None:
            (recog.parent / "command.txt").write_text(f"python -m x --hotwords h.txt --hotword_bonus {bonus}\n")

    decode("hotwords_grid_b2", "dev", "d1 APRIL FIRST\nd2 MY SIXTH\n")      # 1 error, APRIL found
    decode("hotwords_grid_b4", "dev", "d1 APRIL FIRST\nd2 MAY SIXTH\n")     # 0 errors, both found
    decode("hotwords_grid_b6", "dev", "d1 APRIL FIRST\nd2 MAY MAY SIXTH\n")  # 1 insertion
    (studies / "hotwords_grid_b8" / "dev").mkdir(parents=True)                 # not decoded
    decode("hotwords_none", "test", "t1 SEVENTEEN NINTH\nt2 ONE TWO\n")
    decode("hotwords_biased", "test", "t1 NOVEMBER NINTH\nt2 ONE TWO\n", bonus=4)
    args = ["--studies_dir", str(studies), "--data_root", str(data)]
    assert main(args + ["--choose_hotword_bonus", "--hotword_bonus_grid", "2", "4", "6", "8"]) == 0
    out = capsys.readouterr()
    assert out.out == "4\n" and "2: 25.0 (1/2), 4: 0.0 (2/2), 6: 25.0 (2/2); chosen 4" in out.err
    decode("hotwords_grid_b1", "dev", "d1 APRIL FIRST\nd2 MAY SIXTH\n")     # ties with 4: the smaller bonus
    assert main(args + ["--choose_hotword_bonus"]) == 0 and capsys.readouterr().out == "1\n"
    with pytest.raises(SystemExit, match="to choose --hotword_bonus from"):
        main(args + ["--choose_hotword_bonus", "--hotword_bonus_grid", "3"])
    report = tmp_path / "R.md"
    assert main(args + ["--hotword_sets", "test", "--hotword_bonus_grid", "2", "4", "6", "--out", str(report)]) == 0
    section = report.read_text().split("## Hotword biasing", 1)[1].split("## ", 1)[0]
    assert "(APRIL, MAY: the words" in section and "Chosen: 4." in section
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows[:4] == ["|bonus|2|4|6|", "|---|---|---|---|", "|dev WER|25.0|0.0|25.0|",
                        "|rare words found|1 / 2|2 / 2|2 / 2|"]
    assert "|test|no list|0 / 1|25.0|0.0|1|" in rows and "|test|1 phrases, bonus 4|1 / 1|0.0|0.0|1|" in rows


def test_the_fallback_table_has_a_row_for_the_vad_gate(tmp_path):
    """`vadgate_greedy/<set>`: a row after `none`, with how many recordings the gate kept from decoding."""
    import numpy as np
    import soundfile as sf

    from espnet_llm.bin.studies_report import main

    d = tmp_path / "data" / "noise"
    d.mkdir(parents=True)
    sf.write(d / "a.wav", np.zeros(16000, np.float32), 16000)
    (d / "wav.scp").write_text(f"n1 {d / 'a.wav'}\nn2 {d / 'a.wav'}\n")
    dev = tmp_path / "data" / "dev"
    dev.mkdir()
    sf.write(dev / "a.wav", np.zeros(16000, np.float32), 16000)
    (dev / "wav.scp").write_text(f"u1 {dev / 'a.wav'}\n")
    (dev / "text").write_text("u1 A B\n")
    studies = tmp_path / "studies"
    for study, dset, hyp, extra in (
            ("fallback_none", "noise", "n1 X Y\nn2 Z\n", {}), ("fallback_none", "dev", "u1 A B\n", {}),
            ("fallback_joint_t0.5", "dev", "u1 A B\n", {"fallback": "u1 -\n"}),
            ("vadgate_greedy", "noise", "n1 \nn2 Z\n", {"vad": "n1 no_speech\nn2 speech\n"}),
            ("vadgate_greedy", "dev", "u1 A B\n", {"vad": "u1 speech\n"})):
        recog = studies / study / dset / "1best_recog"
        recog.mkdir(parents=True)
        (recog / "text").write_text(hyp)
        for name, content in extra.items():
            (recog / name).write_text(content)
    out = tmp_path / "R.md"
    assert main(["--studies_dir", str(studies), "--data_root", str(tmp_path / "data"), "--fallback_sets", "dev",
                 "noise", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().split("## CTC fallback", 1)[1].splitlines() if line.startswith("|")]
    assert rows[2:4] == ["|none|WER 0.0, runaway 0/1|non-empty 2/2, runaway 0/2|",
                         "|none, VAD gate|WER 0.0, runaway 0/1, gated 0|non-empty 1/2, runaway 0/2, gated 1|"]
