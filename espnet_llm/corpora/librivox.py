"""The LibriVox smoke set in ../shared/data/librivox-clips -> one Kaldi data dir (out-of-domain decoding check).

Layout read: `<root>/librivox/{fileids,transcription}` (Sphinx format, as AN4) + `<root>/librivox/<fileid>.wav`.
Utterance ids are `librivox-<fileid>` with speaker `librivox`; transcripts are upper-cased (AN4's convention,
which scoring uses).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from espnet_llm.corpora.an4 import CorpusError, parse_transcription


def read_clips(root: Path, subset: str = "librivox") -> List[Tuple[str, str, str, str]]:
    """-> sorted [(utt_id, speaker, wav path, WORDS)]."""
    folder = root / subset
    trans = parse_transcription(folder / "transcription")
    fileids_path = folder / "fileids"
    if not fileids_path.is_file():
        raise CorpusError(f"{fileids_path}: fileids file not found")
    rows = []
    for n, fileid in enumerate(fileids_path.read_text(encoding="utf-8").split(), 1):
        if fileid not in trans:
            raise CorpusError(f"{fileids_path}:{n}: {fileid} has no transcription")
        wav = folder / f"{fileid}.wav"
        if not wav.is_file():
            raise CorpusError(f"{fileids_path}:{n}: audio {wav} not found")
        rows.append((f"{subset}-{fileid}", subset, str(wav.resolve()), trans[fileid].upper()))
    return sorted(rows)
