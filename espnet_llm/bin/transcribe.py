#!/usr/bin/env python3
"""Transcribe audio files with a packed model or an exp dir: a speech LLM or an ESPnet AM, as its config says.

Usage:
    espnet-llm-transcribe exp/llm_asr_whisper_ft_lora/packed.zip speech.flac other.wav
    espnet-llm-transcribe egs/an4/asr1/exp/asr_conformer a.wav --beam_size 10 --ctc_weight 0.3 --text_case upper
    python -m espnet_llm.bin.transcribe exp/llm_asr_whisper_ft_lora/packed.zip speech.ogg --details
    espnet-llm-transcribe exp/llm_asr_whisper_ft_lora/packed.zip lecture.flac --segments   # a 10-minute recording

Prints `<file> <transcript>` per line (with --details: `<file> <score> <transcript>`). The audio may be any format
soundfile reads (WAV, FLAC, OGG, ...), at any sample rate, mono or stereo: it is mixed to mono, resampled to the
model's rate and, for a model trained on fbank features, turned into them as the recipe does (espnet_llm.inference).
An archive (`python -m espnet_llm.bin.pack`) is unpacked once into `--cache_dir` (default `$ESPNET_LLM_CACHE` or
`~/.cache/espnet_llm/packed`). Search options left out take the model's own defaults: greedy search for a speech
LLM; ESPnet's Speech2Text defaults (beam 20, ctc_weight 0.5) for an AM.

A recording longer than `--max_segment_seconds` (30, the Whisper encoder's window) is cut at its pauses by Silero
VAD and decoded in segments (espnet_llm.longform); `--segments` prints one `<file> <start> <end> <text>` line per
segment instead of the stitched transcript. `--vad_gate`: a file in which the VAD finds no speech (silence, noise,
music) is not decoded and prints an empty transcript.
"""
import argparse
import contextlib
import logging
import sys
from typing import List, Optional

TEXT_CASES = ("keep", "upper", "lower")  # espnet_llm.inference.TEXT_CASES


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="espnet-llm-transcribe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a packed model archive, or a trained exp dir (speech LLM or ESPnet AM)")
    parser.add_argument("audio", nargs="+", help="audio files")
    parser.add_argument("--beam_size", type=int, default=None, help="beam size (speech LLM: 1 = greedy)")
    parser.add_argument("--ctc_weight", type=float, default=None, help="CTC weight of joint decoding")
    parser.add_argument("--penalty", type=float, default=None, help="length bonus per token")
    parser.add_argument("--text_case", choices=TEXT_CASES, default="keep", help="case of the printed text")
    parser.add_argument("--model_file", default=None, help="with an exp dir: another of its model files")
    parser.add_argument("--cache_dir", default=None, help="where archives are unpacked")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--details", action="store_true", help="print the score before the text")
    parser.add_argument("--long_form", choices=("auto", "true", "false"), default="auto",
                        help="cut the recording at pauses into segments (auto: when longer than --max_segment_seconds)")
    parser.add_argument("--max_segment_seconds", type=float, default=30.0, help="the longest segment")
    parser.add_argument("--vad_gate", action="store_true",
                        help="a file in which the VAD finds no speech is not decoded: its transcript is empty")
    parser.add_argument("--segments", action="store_true", help="print each segment with its start and end seconds")
    parser.add_argument("--log_level", default="WARNING", choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    options = {k: v for k, v in (("beam_size", args.beam_size), ("ctc_weight", args.ctc_weight),
                                 ("penalty", args.penalty)) if v is not None}
    # stdout carries only the transcripts: what ESPnet prints while it is imported and built goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        from espnet_llm.audio import AudioError
        from espnet_llm.inference import load_pretrained

        try:
            model = load_pretrained(args.model, cache_dir=args.cache_dir, asr_model_file=args.model_file,
                                    device=args.device, text_case=args.text_case, **options)
        except (ValueError, FileNotFoundError, RuntimeError) as e:
            sys.exit(f"espnet-llm-transcribe: error: {e}")
    failed = 0
    for path in args.audio:
        long_form = {"auto": "auto", "true": True, "false": False}[args.long_form]
        try:
            best = model.transcribe(path, return_details=True, long_form=long_form,
                                    max_segment_seconds=args.max_segment_seconds, vad_gate=args.vad_gate)
        except (AudioError, ValueError, RuntimeError) as e:
            print(f"espnet-llm-transcribe: error: {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        segments = getattr(best, "segments", None)
        if segments is not None and args.segments:
            for seg in segments:
                print(f"{path} {seg.start:.2f} {seg.end:.2f} {seg.text}", flush=True)
        elif segments is not None:
            print(f"{path} {best.text}", flush=True)
        else:
            print(f"{path} {best.score:.4f} {best.text}" if args.details else f"{path} {best.text}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
