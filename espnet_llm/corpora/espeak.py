"""Synthetic speech for a text corpus with eSpeak NG: transcripts -> 16 kHz FLAC + one Kaldi data dir.

A speech LLM trained on AN4 alone hears only letters, digits and a few census words, so it answers every
out-of-domain utterance in those (the LibriVox clips: ~100 % WER). Text is plentiful offline (LibriSpeech
dev-clean transcripts, Gutenberg); eSpeak NG (Debian package `espeak-ng`, a formant synthesiser with no model
files to download) turns a sample of it into speech in several voices, rates and pitches, so that the projector
and the LoRA adapters also see general English through the (frozen) speech encoder.

Text read: a Kaldi `text` file (`<id> WORDS`), or a directory searched for LibriSpeech `*.trans.txt` files. Lines
with fewer than `min_words` or more than `max_words` words are left out; `max_utts` of the rest are drawn with a
fixed seed. Each utterance gets a voice (round robin over `voices`), a rate in words per minute and a pitch drawn
from their ranges; its id is `espeak-<voice>-<source id>` and its speaker `espeak-<voice>`. Transcripts are
upper-cased (AN4's and LibriSpeech's convention); eSpeak reads them lower-cased (upper-case words can be spelled).

Audio goes to `<out_dir>/audio/<id>.flac`, each written to a temporary file and renamed, and a file that exists is
not synthesised again, so an interrupted run resumes. The data dir (`wav.scp`, `text`, `utt2spk`, `spk2utt`,
`utt2num_samples`) is written last.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from espnet_llm import datadir
from espnet_llm.corpora import write_datadir
from espnet_llm.corpora.an4 import CorpusError

DEFAULT_VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan")
FS = 16000


@dataclass(frozen=True)
class SynthUtt:
    utt: str        # espeak-<voice>-<source id>
    speaker: str    # espeak-<voice>
    words: str      # upper case
    voice: str
    rate: int       # words per minute (espeak-ng -s)
    pitch: int      # 0-99 (espeak-ng -p)


def espeak_binary() -> str:
    """Path of espeak-ng (or espeak), or CorpusError saying how to install it."""
    for name in ("espeak-ng", "espeak"):
        path = shutil.which(name)
        if path:
            return path
    raise CorpusError("espeak-ng not found on PATH: install the Debian package (apt-get install espeak-ng) "
                      "or run tools/install.sh --with_espeak true")


def check_voices(voices: Sequence[str], binary: Optional[str] = None) -> None:
    """CorpusError for a voice espeak-ng does not have (it would fall back to its default voice silently)."""
    binary = binary or espeak_binary()
    listing = subprocess.run([binary, "--voices"], capture_output=True, text=True, check=False).stdout
    known = set()
    for line in listing.splitlines()[1:]:  # Pty Language Age/Gender VoiceName File Other Languages
        cols = line.split()
        if len(cols) >= 5:
            known.update({cols[1], cols[3], cols[4], cols[4].rsplit("/", 1)[-1]})
    unknown = [v for v in voices if v not in known]
    if unknown:
        raise CorpusError(f"unknown eSpeak NG voice(s) {', '.join(unknown)} ('{binary} --voices' lists them)")


def read_text(source: Path) -> List[Tuple[str, str]]:
    """[(id, WORDS)] from a Kaldi text file or from the `*.trans.txt` files under a directory, sorted by id."""
    if source.is_dir():
        files = sorted(source.rglob("*.trans.txt"))
        if not files:
            raise CorpusError(f"{source}: no *.trans.txt files under this directory")
    elif source.is_file():
        files = [source]
    else:
        raise CorpusError(f"{source}: text not found (a Kaldi text file or a directory of *.trans.txt)")
    rows: Dict[str, str] = {}
    for path in files:
        try:
            lines = path.read_bytes().decode("utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise CorpusError(f"{path}: not UTF-8 ({e})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            utt, _, words = line.strip().partition(" ")
            words = " ".join(words.split())
            if not words:
                raise CorpusError(f"{path}:{n}: empty transcript for {utt}")
            if utt in rows:
                raise CorpusError(f"{path}:{n}: duplicate utterance id {utt}")
            rows[utt] = words.upper()
    return sorted(rows.items())


def plan(rows: Sequence[Tuple[str, str]], max_utts: int, voices: Sequence[str] = DEFAULT_VOICES,
         min_words: int = 3, max_words: int = 16, rate: Tuple[int, int] = (140, 190),
         pitch: Tuple[int, int] = (30, 70), seed: int = 0) -> List[SynthUtt]:
    """Draw `max_utts` rows of `min_words`..`max_words` words and give each a voice, rate and pitch (seeded)."""
    if not voices:
        raise CorpusError("no eSpeak voices given")
    if max_utts < 1:
        raise CorpusError(f"max_utts must be at least 1, got {max_utts}")
    pool = [(u, w) for u, w in rows if min_words <= len(w.split()) <= max_words]
    if not pool:
        raise CorpusError(f"no transcript has {min_words} to {max_words} words")
    rng = random.Random(seed)
    rng.shuffle(pool)
    out = []
    for i, (utt, words) in enumerate(pool[:max_utts]):
        voice = voices[i % len(voices)]
        out.append(SynthUtt(f"espeak-{voice}-{utt}", f"espeak-{voice}", words, voice,
                            rng.randint(*rate), rng.randint(*pitch)))
    return sorted(out, key=lambda s: s.utt)


def synthesize(utt: SynthUtt, out: Path, binary: Optional[str] = None) -> int:
    """Speak `utt` into `out` (16 kHz mono FLAC, written atomically); returns its number of samples."""
    binary = binary or espeak_binary()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".espeak.") as tmp:
        wav = Path(tmp) / "out.wav"
        proc = subprocess.run([binary, "-v", utt.voice, "-s", str(utt.rate), "-p", str(utt.pitch), "-w", str(wav),
                               utt.words.lower()], capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not wav.is_file():
            raise CorpusError(f"utterance {utt.utt}: espeak-ng failed (voice {utt.voice}, exit {proc.returncode}): "
                              f"{proc.stderr.strip()[-300:]}")
        samples, fs = sf.read(str(wav), dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
        if fs != FS:
            g = np.gcd(fs, FS)
            samples = resample_poly(samples, FS // g, fs // g).astype(np.float32)
        if samples.size == 0 or not np.any(samples):
            raise CorpusError(f"utterance {utt.utt}: espeak-ng wrote silence (voice {utt.voice})")
        peak = float(np.abs(samples).max())
        if peak > 0.99:
            samples = samples * (0.99 / peak)
        part = Path(tmp) / "out.flac"
        sf.write(str(part), samples, FS, format="FLAC", subtype="PCM_16")
        os.replace(part, out)
    return int(samples.size)


def prepare(source: Path, out_dir: Path, max_utts: int, **plan_opts) -> List[SynthUtt]:
    """Synthesise a drawn sample of `source`'s transcripts into `out_dir` (audio/ + the Kaldi data dir)."""
    utts = plan(read_text(source), max_utts, **plan_opts)
    binary = espeak_binary()
    check_voices(sorted({u.voice for u in utts}), binary)
    audio_dir = (out_dir / "audio").resolve()
    num_samples = {}
    for u in utts:
        flac = audio_dir / f"{u.utt}.flac"
        if flac.is_file():
            num_samples[u.utt] = sf.info(str(flac)).frames
        else:
            num_samples[u.utt] = synthesize(u, flac, binary)
    write_datadir(out_dir, wav_scp={u.utt: str(audio_dir / f"{u.utt}.flac") for u in utts},
                  text={u.utt: u.words for u in utts}, utt2spk={u.utt: u.speaker for u in utts})
    datadir.write_table(out_dir / "utt2num_samples", {u: str(n) for u, n in num_samples.items()})
    return utts
