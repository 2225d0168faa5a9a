"""llm_ctc_vocab: the LLM ids of the training transcripts, tokenised as the training preprocessor does."""
from pathlib import Path

import pytest

from espnet_llm.asr.ctc import read_token_ids
from espnet_llm.asr.llm import load_tokenizer
from espnet_llm.bin.llm_ctc_vocab import main


def test_vocabulary_is_every_id_of_the_lowercased_transcripts(tiny_llm_dir, tmp_path):
    text = tmp_path / "text"
    text.write_text("u1 YES NO\nu2 ONE TWO\n")
    config = tmp_path / "train.yaml"
    config.write_text(f"text_lowercase: true\nllm_conf:\n  name_or_path: {tiny_llm_dir}\n")
    out = tmp_path / "exp" / "ctc_vocab.txt"
    assert main(["--config", str(config), "--text", str(text), "--out", str(out)]) == 0
    tok = load_tokenizer(tiny_llm_dir)
    want = sorted({i for t in ("yes no", "one two") for i in tok(t)["input_ids"]})
    assert read_token_ids(out) == want
    assert out.read_text().splitlines()[0] == f"{want[0]} {tok.convert_ids_to_tokens(want[0])}"
    # without lower-casing (the option overrides the config) the upper-case ids are listed instead
    assert main(["--config", str(config), "--text_lowercase", "false", "--text", str(text), "--out", str(out)]) == 0
    assert read_token_ids(out) == sorted({i for t in ("YES NO", "ONE TWO") for i in tok(t)["input_ids"]})


def test_empty_transcript_is_named(tiny_llm_dir, tmp_path):
    text = tmp_path / "text"
    text.write_text("u1 YES\nu2 \n")
    with pytest.raises(ValueError, match="u2"):
        main(["--llm_dir", str(tiny_llm_dir), "--text", str(text), "--out", str(tmp_path / "v.txt")])


def test_include_keeps_the_ids_of_another_vocabulary(tiny_llm_dir, tmp_path):
    """A model trained further on new text keeps every token its head learned: --include adds those ids."""
    text = tmp_path / "text"
    text.write_text("u1 yes\n")
    old = tmp_path / "old.txt"
    old.write_text("7 a\n9 b\n")
    out = tmp_path / "ctc_vocab.txt"
    assert main(["--llm_dir", str(tiny_llm_dir), "--text", str(text), "--include", str(old), "--out", str(out)]) == 0
    assert read_token_ids(out) == sorted({7, 9} | set(load_tokenizer(tiny_llm_dir)("yes")["input_ids"]))
    old.write_text("seven\n")
    with pytest.raises(SystemExit, match="old.txt:1: expected an LLM token id"):
        main(["--llm_dir", str(tiny_llm_dir), "--text", str(text), "--include", str(old), "--out", str(out)])
