#!/usr/bin/env python3
"""Speed perturbation of a Kaldi data dir (Ko et al. 2015), as Kaldi's `perturb_data_dir_speed.sh` + sox.

Usage:
    python -m espnet_llm.bin.speed_perturb --data_dir data/train --out_dir data/train_sp \
        --audio_dir dump/audio/train_sp --factors 0.9 1.0 1.1

Factor f plays the audio f times as fast (tempo and pitch change, like `sox speed f`): the waveform is
resampled from `fs * f` to `fs` with torchaudio's (pure-Python) polyphase resampler. Perturbed copies
get ids `sp<f>-<utt>` and speakers `sp<f>-<spk>` (speaker stays a prefix) and are written as FLAC under
`--audio_dir`; factor 1.0 keeps the original ids and files. Files already written are kept on a rerun.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import soundfile

from espnet_llm import audio, datadir
from espnet_llm.corpus import write_datadir


def perturb(wav, fs: int, factor: float):
    if factor == 1.0:
        return wav
    import torch
    import torchaudio.functional

    x = torch.from_numpy(wav).unsqueeze(0)
    return torchaudio.functional.resample(x, orig_freq=round(fs * factor), new_freq=fs)[0].numpy()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, required=True)
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--audio_dir", type=Path, required=True, help="where perturbed FLAC files go")
    parser.add_argument("--factors", type=float, nargs="+", default=[0.9, 1.0, 1.1])
    parser.add_argument("--fs", type=int, default=16000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    src = {name: datadir.read_table(args.data_dir / name) for name in ("wav.scp", "text", "utt2spk")}
    wav_scp, text, utt2spk = {}, {}, {}
    for factor in args.factors:
        prefix = "" if factor == 1.0 else f"sp{factor}-"
        out_audio = args.audio_dir / f"sp{factor}"
        out_audio.mkdir(parents=True, exist_ok=True)
        for utt, entry in src["wav.scp"].items():
            new = prefix + utt
            if factor == 1.0:
                wav_scp[new] = entry
            else:
                path = out_audio / f"{utt}.flac"
                if not path.is_file():
                    try:
                        wav = audio.read_audio(entry, expected_fs=args.fs, utt_id=utt)
                    except audio.AudioError as e:
                        sys.exit(f"speed_perturb: error: {e}")
                    tmp = path.with_suffix(".tmp.flac")
                    soundfile.write(tmp, perturb(wav, args.fs, factor), args.fs)
                    tmp.replace(path)
                wav_scp[new] = str(path.resolve())
            text[new] = src["text"][utt]
            utt2spk[new] = prefix + src["utt2spk"][utt]
        logging.info("factor %s: %d utterances", factor, len(src["wav.scp"]))
    write_datadir(args.out_dir, wav_scp=wav_scp, text=text, utt2spk=utt2spk)


if __name__ == "__main__":
    main()
