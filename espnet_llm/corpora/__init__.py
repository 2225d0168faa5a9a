"""Corpus readers: each turns a corpus's own layout into Kaldi data dirs."""
from __future__ import annotations

import os
from typing import Mapping

from espnet_llm import datadir


def write_datadir(out_dir: str | os.PathLike, wav_scp: Mapping[str, str], text: Mapping[str, str],
                  utt2spk: Mapping[str, str]) -> None:
    """Write `wav.scp`, `text`, `utt2spk` and `spk2utt` (each atomically, sorted), then validate the dir."""
    datadir.write_table(os.path.join(out_dir, "wav.scp"), wav_scp)
    datadir.write_table(os.path.join(out_dir, "text"), text)
    datadir.write_table(os.path.join(out_dir, "utt2spk"), utt2spk)
    spk2utt = {spk: " ".join(utts) for spk, utts in datadir.utt2spk_to_spk2utt(utt2spk).items()}
    datadir.write_table(os.path.join(out_dir, "spk2utt"), spk2utt)
    datadir.validate(out_dir)
