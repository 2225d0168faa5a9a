#!/usr/bin/env python3
"""Waveforms -> 80-dim log-mel filterbank features in Kaldi ark/scp (kaldiio).

Usage:
    python -m espnet_llm.bin.feats_extract --data_dir data/test --out_dir dump/fbank/test
    # one split of --nj jobs, as the recipe runs it through cmd.sh's runner:
    utils/run.pl JOB=1:2 dump/fbank/test/log/feats.JOB.log \
        python -m espnet_llm.bin.feats_extract --data_dir data/test/split2/JOB --out_dir dump/fbank/test \
        --name feats.JOB

Features are Kaldi-compatible fbank (`espnet_llm.audio.fbank` = `torchaudio.compliance.kaldi.fbank`: 25 ms window,
10 ms shift, povey window, dither 0 so that reruns are bit-identical). Writes `<out_dir>/<name>.ark`, `<name>.scp`
and `<name>.utt2num_frames` and `<name>.utt2num_samples` (the batching lengths of raw-audio models). The ark and
scp are written under temporary names and renamed into place, then `<name>.stamp` (a hash of the split's wav.scp
and the options): a rerun skips a split whose stamp matches its input, and redoes one whose wav.scp changed
(`--overwrite` redoes it anyway). Global CMVN statistics are collected afterwards by
ESPnet's own `--collect_stats` pass, which writes the `feats_stats.npz` that its `global_mvn` reads.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from espnet_llm import audio, datadir
from espnet_llm.audio import fbank  # shared with decoding from audio files (espnet_llm.inference)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, required=True, help="Kaldi data dir with wav.scp")
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--name", default="feats", help="basename of the ark/scp written")
    parser.add_argument("--fs", type=int, default=16000)
    parser.add_argument("--num_mel_bins", type=int, default=80)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import kaldiio
    import torch

    torch.set_num_threads(1)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    scp = args.out_dir / f"{args.name}.scp"
    stamp_path = args.out_dir / f"{args.name}.stamp"
    stamp = input_stamp(args)
    if scp.is_file() and stamp_path.is_file() and stamp_path.read_text() == stamp and not args.overwrite:
        logging.info("%s is up to date with %s: skipping (use --overwrite to redo)", scp, args.data_dir / "wav.scp")
        return
    wav_scp = datadir.read_table(args.data_dir / "wav.scp")
    ark = args.out_dir / f"{args.name}.ark"
    tmp_ark = args.out_dir / f".{args.name}.ark.tmp"  # the old ark stays whole until the new one is complete
    tmp_scp = args.out_dir / f".{args.name}.scp.tmp"
    lengths, samples = {}, {}
    with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
        for utt, entry in wav_scp.items():
            try:
                wav = audio.read_audio(entry, expected_fs=args.fs, utt_id=utt)
            except audio.AudioError as e:
                sys.exit(f"feats_extract: error: {e}")
            if len(wav) < args.fs * 25 // 1000:  # kaldi.fbank asserts on audio shorter than its window
                sys.exit(f"feats_extract: error: utterance {utt} ({entry}) is shorter than one 25 ms frame")
            feats = fbank(wav, args.fs, args.num_mel_bins).numpy()
            writer(utt, feats)
            lengths[utt] = feats.shape[0]
            samples[utt] = len(wav)
    datadir.write_table(args.out_dir / f"{args.name}.utt2num_frames", {u: str(n) for u, n in lengths.items()})
    datadir.write_table(args.out_dir / f"{args.name}.utt2num_samples", {u: str(n) for u, n in samples.items()})
    tmp_scp.write_text(tmp_scp.read_text().replace(f" {tmp_ark}:", f" {ark}:"))
    os.replace(tmp_ark, ark)
    os.replace(tmp_scp, scp)
    datadir.write_text_atomic(stamp_path, stamp)  # last: a split is done when its stamp matches its input
    logging.info("wrote %d utterances to %s", len(lengths), scp)


def input_stamp(args) -> str:
    """What the features depend on: the split's wav.scp (and segments) and the options."""
    return datadir.files_stamp(args.data_dir, ("wav.scp", "segments"), f"fs={args.fs} num_mel_bins={args.num_mel_bins}")

if __name__ == "__main__":
    main()
