"""espnet_llm.corpus: the data-dir writer every corpus reader shares (sorted, spk2utt derived, validated)."""
import logging

import pytest

from espnet_llm import datadir
from espnet_llm.corpus import CorpusError, write_datadir, write_rows


def test_write_datadir_sorts_and_validates(tmp_path):
    out = tmp_path / "data" / "train"
    write_datadir(out, wav_scp={"b-2": "/x/b2.flac", "a-1": "/x/a1.flac", "b-1": "/x/b1.flac"},
                  text={"b-1": "NO", "a-1": "YES", "b-2": "GO"}, utt2spk={"b-2": "b", "b-1": "b", "a-1": "a"})
    assert (out / "wav.scp").read_text() == "a-1 /x/a1.flac\nb-1 /x/b1.flac\nb-2 /x/b2.flac\n"
    assert (out / "text").read_text() == "a-1 YES\nb-1 NO\nb-2 GO\n"
    assert (out / "spk2utt").read_text() == "a a-1\nb b-1 b-2\n"
    with pytest.raises(datadir.DataDirError, match="empty transcript"):
        write_datadir(tmp_path / "bad", wav_scp={"a-1": "/x"}, text={"a-1": ""}, utt2spk={"a-1": "a"})


def test_write_rows_writes_the_four_tables_of_reader_rows(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "dev"
    write_rows(out, [("s2-u1", "s2", "/x/s2u1.wav", "GO HOME"), ("s1-u1", "s1", "/x/s1u1.wav", "STOP")])
    assert datadir.read_table(out / "utt2spk") == {"s1-u1": "s1", "s2-u1": "s2"}
    assert (out / "wav.scp").read_text() == "s1-u1 /x/s1u1.wav\ns2-u1 /x/s2u1.wav\n"
    assert (out / "text").read_text() == "s1-u1 STOP\ns2-u1 GO HOME\n"
    assert f"{out}: 2 utterances, 2 speakers" in caplog.text
    with pytest.raises(CorpusError, match=f"^{tmp_path / 'bad'}: utterance id s1-u1 twice \\(the second: /y\\)$"):
        write_rows(tmp_path / "bad", [("s1-u1", "s1", "/x", "A"), ("s1-u1", "s1", "/y", "B")])
    assert not (tmp_path / "bad").exists()
