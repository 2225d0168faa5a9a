#!/usr/bin/env python3
"""Write a hallucination stress set: audio with no speech in it, and speech at the edges of what a model has seen.

Usage:
    python -m espnet_llm.bin.make_stress_set --speech data/test --out_dir data/stress
    python -m espnet_llm.bin.make_stress_set --speech data/test --ood data/librivox --out_dir data/stress --seed 1

Writes two Kaldi data dirs (16 kHz mono FLAC under <out_dir>_*/audio/):
- `<out_dir>_nonspeech` (no `text`: nothing should come out): silence (2, 5 and 10 s), white and brown noise at
  several levels, and music-like tone sequences (random notes of a scale with harmonics and decays), 4 of each
  kind by default (`--per_kind`); `utt2kind` names the kind of each recording;
- `<out_dir>_speech` (with `text`): from `--speech` the shortest utterances cut to their first 0.4 s kept whole
  (very short: the reference kept, as a model should get the first word or nothing), whole utterances joined into
  25-s recordings (very long within the encoder's window), and, with `--ood`, out-of-domain speech as it is.

Everything is seeded (`--seed`); a rerun writes the same files.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

FS = 16000


def tones(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A melody: notes of a major scale, 0.2-0.6 s each, three harmonics, an exponential decay."""
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
    out: List[np.ndarray] = []
    while sum(map(len, out)) < seconds * FS:
        n = int(rng.uniform(0.2, 0.6) * FS)
        t = np.arange(n) / FS
        f = rng.choice(scale) * rng.choice([1, 2])
        note = sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3)) * np.exp(-3 * t)
        out.append(note)
    wav = np.concatenate(out)[: int(seconds * FS)]
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def noise(rng: np.random.Generator, seconds: float, colour: str, level: float) -> np.ndarray:
    white = rng.standard_normal(int(seconds * FS))
    wav = np.cumsum(white) if colour == "brown" else white
    wav = wav - np.convolve(wav, np.ones(400) / 400, mode="same") if colour == "brown" else wav  # no DC drift
    return (level * wav / np.abs(wav).max()).astype(np.float32)


def nonspeech(rng: np.random.Generator, per_kind: int) -> Dict[str, tuple]:
    """{id: (kind, samples)}."""
    out = {}
    for i in range(per_kind):
        out[f"silence-{i:02d}"] = ("silence", np.zeros(int([2, 5, 10, 5][i % 4] * FS), np.float32))
        out[f"whitenoise-{i:02d}"] = ("white_noise", noise(rng, rng.uniform(2, 8), "white", [0.01, 0.05, 0.2, 0.5][i % 4]))
        out[f"brownnoise-{i:02d}"] = ("brown_noise", noise(rng, rng.uniform(2, 8), "brown", [0.05, 0.2, 0.5, 0.8][i % 4]))
        out[f"tones-{i:02d}"] = ("tones", tones(rng, rng.uniform(3, 10)))
    return out


def write_dir(out: Path, recordings: Dict[str, np.ndarray], texts: Optional[Dict[str, str]],
              extra: Optional[Dict[str, Dict[str, str]]] = None) -> None:
    import soundfile as sf

    from espnet_llm import datadir

    audio = (out / "audio").resolve()
    audio.mkdir(parents=True, exist_ok=True)
    wav_scp = {}
    for utt, wav in sorted(recordings.items()):
        path = audio / f"{utt}.flac"
        sf.write(path, wav, FS, format="FLAC", subtype="PCM_16")
        wav_scp[utt] = str(path)
    datadir.write_table(out / "wav.scp", wav_scp)
    utt2spk = {u: u for u in wav_scp}  # each recording its own speaker: nothing is shared between them
    datadir.write_table(out / "utt2spk", utt2spk)
    datadir.write_table(out / "spk2utt", {u: u for u in wav_scp})
    if texts is not None:
        datadir.write_table(out / "text", texts)
    for name, table in (extra or {}).items():
        datadir.write_table(out / name, table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speech", type=Path, required=True, help="a data dir of in-domain speech (e.g. data/test)")
    parser.add_argument("--ood", type=Path, default=None, help="a data dir of out-of-domain speech (e.g. data/librivox)")
    parser.add_argument("--out_dir", type=Path, required=True, help="writes <out_dir>_nonspeech and <out_dir>_speech")
    parser.add_argument("--per_kind", type=int, default=4, help="recordings of each non-speech kind")
    parser.add_argument("--n_short", type=int, default=10, help="very short utterances")
    parser.add_argument("--n_long", type=int, default=4, help="25-s recordings of joined utterances")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from espnet_llm import datadir
    from espnet_llm.audio import AudioError, load_audio

    rng = np.random.default_rng(args.seed)
    made = nonspeech(rng, args.per_kind)
    write_dir(Path(f"{args.out_dir}_nonspeech"), {u: w for u, (_, w) in made.items()}, None,
              {"utt2kind": {u: k for u, (k, _) in made.items()}})
    try:
        texts = datadir.read_table(args.speech / "text")
        wavs = datadir.read_table(args.speech / "wav.scp")
        audio = {u: load_audio(wavs[u], FS, utt_id=u) for u in sorted(texts)}
        recordings, refs, kinds = {}, {}, {}
        for u in sorted(audio, key=lambda u: (len(audio[u]), u))[: args.n_short]:  # the shortest, cut to 0.4 s
            recordings[f"short-{u}"], refs[f"short-{u}"], kinds[f"short-{u}"] = audio[u][: int(0.4 * FS)], texts[u], "very_short"
        order = [u for u in sorted(audio) if texts[u]]
        gap = np.zeros(int(0.5 * FS), np.float32)
        at = 0
        for i in range(args.n_long):
            pieces, words = [], []
            while at < len(order) and sum(map(len, pieces)) + len(audio[order[at]]) + len(gap) <= 25 * FS:
                pieces += [audio[order[at]], gap]
                words.append(texts[order[at]])
                at += 1
            if not pieces:
                break
            recordings[f"long-{i:02d}"], refs[f"long-{i:02d}"], kinds[f"long-{i:02d}"] = (
                np.concatenate(pieces[:-1]), " ".join(words), "very_long")
        if args.ood is not None:
            ood_texts, ood_wavs = datadir.read_table(args.ood / "text"), datadir.read_table(args.ood / "wav.scp")
            for u in sorted(ood_texts):
                recordings[f"ood-{u}"], refs[f"ood-{u}"], kinds[f"ood-{u}"] = (
                    load_audio(ood_wavs[u], FS, utt_id=u), ood_texts[u], "out_of_domain")
    except (AudioError, datadir.DataDirError, KeyError, FileNotFoundError) as e:
        print(f"make_stress_set: error: {e}", file=sys.stderr)
        return 1
    write_dir(Path(f"{args.out_dir}_speech"), recordings, refs, {"utt2kind": kinds})
    print(f"make_stress_set: {len(made)} non-speech recordings in {args.out_dir}_nonspeech, {len(recordings)} "
          f"speech recordings in {args.out_dir}_speech", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
