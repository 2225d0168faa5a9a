"""espnet_llm.bin.hotword_list: biasing lists from given phrases or from a set's rare words, plus distractors."""
import pytest

from espnet_llm.bin.hotword_list import main


def test_a_list_of_phrases_with_distractors_that_no_transcript_has(tmp_path):
    (tmp_path / "phrases.txt").write_text("thirteen\n\nnovember  ninth\n")
    (tmp_path / "train").write_text("u1 ELINOR SAID ONE\n")
    (tmp_path / "book.txt").write_text("Elinor, Marianne and Marianne walked to Barton; Barton Barton.")
    out = tmp_path / "h" / "list.txt"
    assert main(["--phrases", str(tmp_path / "phrases.txt"), "--distractors", "2", "--distractors_from",
                 str(tmp_path / "book.txt"), "--exclude", str(tmp_path / "train"), "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["THIRTEEN", "NOVEMBER NINTH", "BARTON", "MARIANNE"]


def test_the_rare_words_of_a_set_are_those_training_has_at_most_so_often(tmp_path):
    (tmp_path / "dev").write_text("d1 APRIL FIRST\nd2 MAY THIRTIETH FIRST\n")
    (tmp_path / "train").write_text("t1 FIRST FIRST FIRST MAY\nt2 MAY THIRTIETH\n")
    out = tmp_path / "dev_rare.txt"
    common = ["--rare_words_of", str(tmp_path / "dev"), "--train_text", str(tmp_path / "train"), "--out", str(out)]
    assert main(common + ["--max_train_count", "1"]) == 0
    assert out.read_text().splitlines() == ["APRIL", "THIRTIETH"]
    assert main(common + ["--max_train_count", "2"]) == 0
    assert out.read_text().splitlines() == ["APRIL", "MAY", "THIRTIETH"]
    (tmp_path / "seen").write_text("d1 FIRST\n")
    with pytest.raises(SystemExit, match="no word of .*seen is in --train_text at most 0 times"):
        main(["--rare_words_of", str(tmp_path / "seen"), "--train_text", str(tmp_path / "train"), "--out", str(out)])


@pytest.mark.parametrize("args, message", [
    ([], "give --phrases or --rare_words_of"),
    (["--phrases", "p.txt", "--rare_words_of", "dev"], "give --phrases or --rare_words_of"),
    (["--rare_words_of", "dev"], "needs --train_text"),
])
def test_one_source_of_phrases_is_needed(tmp_path, args, message):
    with pytest.raises(SystemExit, match=message):
        main(args + ["--out", str(tmp_path / "x.txt")])


def test_a_transcript_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "dev").write_bytes(b"d1 CAF\xe9\n")
    with pytest.raises(SystemExit, match=r"dev is not UTF-8"):
        main(["--rare_words_of", str(tmp_path / "dev"), "--train_text", str(tmp_path / "dev"),
              "--out", str(tmp_path / "x.txt")])
