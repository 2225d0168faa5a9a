"""Corpus readers: each turns a corpus's own layout into Kaldi data dirs."""
from __future__ import annotations

import os
from typing import Mapping

from espnet_llm import datadir


def write_datadir(out_dir: str | os.PathLike, wav_scp: Mapping[str, str], text: Mapping[str, str],
                  utt2spk: Mapping[str, str]) -> None:
    """Write `wav.scp`, `text`, `utt2spk` and `spk2utt` (each atomically, sorted), then validate the dir.

    A file whose content would not change is left as it is (its time too), so that rerunning data preparation does
    not make the later stages' outputs look stale (stage 3 recomputes features of a `wav.scp` newer than them)."""
    spk2utt = {spk: " ".join(utts) for spk, utts in datadir.utt2spk_to_spk2utt(utt2spk).items()}
    for name, table in (("wav.scp", wav_scp), ("text", text), ("utt2spk", utt2spk), ("spk2utt", spk2utt)):
        path = os.path.join(out_dir, name)
        content = datadir.format_table(table)
        try:
            with open(path, encoding="utf-8", newline="") as f:
                if f.read() == content:
                    continue
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        datadir.write_text_atomic(path, content)
    datadir.validate(out_dir)
