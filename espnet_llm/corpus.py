"""What every corpus's data preparation shares: its error type and the writer of a validated Kaldi data dir.

The corpus readers themselves belong to their recipes (`egs/<corpus>/asr1/local/*.py`, called by `local/data.sh`);
each raises `CorpusError` with the file and line, or the utterance, that is wrong, and writes its sets with
`write_datadir` or `write_rows`.
"""
from __future__ import annotations

import logging
import os
from typing import Iterable, Mapping, Set, Tuple

from espnet_llm import datadir

Row = Tuple[str, str, str, str]  # (utterance id, speaker, audio path, words)


class CorpusError(RuntimeError):
    """The corpus on disk is not what its reader expects; the message names the file and line, or the utterance."""


def write_datadir(out_dir: str | os.PathLike, wav_scp: Mapping[str, str], text: Mapping[str, str],
                  utt2spk: Mapping[str, str]) -> None:
    """Write `wav.scp`, `text`, `utt2spk` and `spk2utt` (each atomically, sorted), then validate the dir."""
    datadir.write_table(os.path.join(out_dir, "wav.scp"), wav_scp)
    datadir.write_table(os.path.join(out_dir, "text"), text)
    datadir.write_table(os.path.join(out_dir, "utt2spk"), utt2spk)
    spk2utt = {spk: " ".join(utts) for spk, utts in datadir.utt2spk_to_spk2utt(utt2spk).items()}
    datadir.write_table(os.path.join(out_dir, "spk2utt"), spk2utt)
    datadir.validate(out_dir)


def write_rows(out_dir: str | os.PathLike, rows: Iterable[Row]) -> None:
    """write_datadir of (utterance id, speaker, audio path, words) rows; logs the set's size. An utterance id twice
    is a CorpusError (a dict would keep the last row without a word)."""
    rows = list(rows)
    seen: Set[str] = set()
    for utt, _, path, _ in rows:
        if utt in seen:
            raise CorpusError(f"{out_dir}: utterance id {utt} twice (the second: {path})")
        seen.add(utt)
    write_datadir(out_dir, wav_scp={u: p for u, _, p, _ in rows}, text={u: w for u, _, _, w in rows},
                  utt2spk={u: s for u, s, _, _ in rows})
    logging.info("%s: %d utterances, %d speakers", out_dir, len(rows), len({r[1] for r in rows}))
