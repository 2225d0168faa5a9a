"""The smoke sets in ../shared/data/librivox-clips -> Kaldi data dirs (out-of-domain decoding checks).

Subsets: `librivox` (5 clips of *Sense and Sensibility*, read literature) and `cards` (5 clips of playing cards,
"eight of spades four of clubs": numbers as in AN4, other words and another recording). Layout read:
`<root>/<subset>/{fileids,transcription}` or `<root>/<subset>/<subset>.{fileids,transcription}` (Sphinx format, as
AN4) + `<root>/<subset>/<fileid>.wav`. Utterance ids are `<subset>-<fileid>` with speaker `<subset>`; transcripts
are upper-cased (AN4's convention, which scoring uses).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

SUBSETS = ("librivox", "cards")

from espnet_llm.corpora.an4 import CorpusError, parse_transcription


def read_clips(root: Path, subset: str = "librivox") -> List[Tuple[str, str, str, str]]:
    """-> sorted [(utt_id, speaker, wav path, WORDS)]."""
    folder = root / subset
    prefix = "" if (folder / "fileids").is_file() else f"{subset}."
    trans = parse_transcription(folder / f"{prefix}transcription")
    fileids_path = folder / f"{prefix}fileids"
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
