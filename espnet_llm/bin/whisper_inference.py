#!/usr/bin/env python3
"""Whisper's own encoder-decoder on a Kaldi data dir: the reference point of a speech LLM built on its encoder.

Usage:
    # the Whisper tiny.en dir that stage 7 converts (exp/whisper/tiny.en), greedy, on the LibriVox clips
    python -m espnet_llm.bin.whisper_inference --whisper exp/whisper/tiny.en --wav_scp data/librivox/wav.scp \
        --output_dir exp/whisper_tiny.en/decode_greedy/librivox
    python -m espnet_llm.bin.wer_score --ref data/librivox/text --hyp exp/whisper_tiny.en/decode_greedy/librivox/text \
        --out_dir exp/whisper_tiny.en/decode_greedy/librivox --remove_punct

Runs Hugging Face's `WhisperForConditionalGeneration.generate` (English transcription, no timestamps, greedy
unless --num_beams) on each recording of `wav.scp` (16 kHz mono, as the recipe's data dirs hold; a recording over
30 s is cut at pauses by espnet_llm.longform), and writes `<output_dir>/text` upper-cased and stripped of
punctuation (espnet_llm.scoring.normalize_text, as `wer_score --remove_punct`), the form of the recipes'
references (digits stay digits: "1850" against "EIGHTEEN FIFTY" is an error, as for any system scored against
these references).
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from espnet_llm.bin import UsageHelpFormatter


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=UsageHelpFormatter)
    parser.add_argument("--whisper", required=True, type=Path, help="a local Hugging Face Whisper dir")
    parser.add_argument("--wav_scp", required=True, type=Path, help="Kaldi wav.scp (<id> <path>)")
    parser.add_argument("--output_dir", required=True, type=Path, help="writes text here")
    parser.add_argument("--num_beams", type=int, default=1, help="1: greedy")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    import torch

    from espnet_llm.audio import AudioError, load_audio
    from espnet_llm.longform import speech_segments
    from espnet_llm.scoring import normalize_text
    from espnet_llm.whisper_convert import transcribe

    torch.set_num_threads(args.threads)
    if not (args.whisper / "config.json").is_file():
        sys.exit(f"whisper_inference: {args.whisper} is not a Hugging Face model dir (no config.json)")
    pieces = []  # (utterance id, samples) with recordings over 30 s cut at pauses
    for n, line in enumerate(args.wav_scp.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, path = line.split(maxsplit=1)
        try:
            wav = load_audio(path, 16000, utt_id=key)
        except (AudioError, OSError) as e:
            sys.exit(f"whisper_inference: {args.wav_scp} line {n}: utterance {key}: {e}")
        spans = speech_segments(wav, 16000, 30.0) if len(wav) > 30 * 16000 else [(0, len(wav))]
        pieces += [(key, wav[a:b]) for a, b in spans]
    hyps = transcribe(args.whisper, [w for _, w in pieces], batch_size=args.batch_size, num_beams=args.num_beams)
    texts: dict = {}
    for (key, _), text in zip(pieces, hyps):
        texts.setdefault(key, []).append(normalize_text(text, "upper", remove_punct=True))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "text").write_text("".join(f"{k} {' '.join(v)}\n" for k, v in texts.items()), encoding="utf-8")
    logging.info(f"{len(texts)} recordings ({len(pieces)} pieces) -> {args.output_dir / 'text'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
