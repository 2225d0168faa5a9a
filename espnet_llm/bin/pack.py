#!/usr/bin/env python3
"""Pack a trained system (a speech LLM or an ESPnet AM exp dir) into one archive that decodes from anywhere.

Usage:
    # a speech LLM: the base LLM dir copied, the LoRA weights kept in the model file (--llm copy, the default)
    python -m espnet_llm.bin.pack --exp_dir exp/llm_asr_whisper_ft_lora --model valid.acc.ave.pth \
        --out exp/llm_asr_whisper_ft_lora/packed.zip
    # the LoRA adapters merged into a full Hugging Face LLM dir (loads the model once)
    python -m espnet_llm.bin.pack --exp_dir exp/llm_asr_whisper_ft_lora --llm merged \
        --out exp/llm_asr_whisper_ft_lora/packed_merged.tar.gz
    # the conventional AM (ESPnet's own files: config, model, token list, bpe model, CMVN stats)
    python -m espnet_llm.bin.pack --exp_dir exp/asr_conformer --out exp/asr_conformer/packed.zip

    # then, from any directory
    espnet-llm-transcribe exp/llm_asr_whisper_ft_lora/packed.zip speech.flac

Run it in the recipe dir (egs/<corpus>/asr1), or anywhere: the exp dir's relative paths (exp/llm/..., exp/whisper/...,
exp/asr_stats_fbank/...) are found from the current directory or from the recipe dir the exp dir lives in.

The archive (zip, tar, tar.gz, ... by --out's name) is ESPnet's packing format (`espnet2.main_funcs.pack_funcs`):
`meta.yaml`, `config.yaml` with every path relative to the archive root, the model file, and what the model reads
when it is built: the LLM dir (`llm/`), the Whisper encoder dir (`encoder/`), `feats_stats.npz`, `ctc_vocab.txt`; for
an AM, the token list and `bpe.model`. Training-only paths (data, shape files, init_param, rir_scp, noise_scp) are
dropped. An AM archive also unpacks with ESPnet's own `unpack()` into Speech2Text's arguments.
See espnet_llm.packing for the layout and espnet_llm.inference for loading (`from_pretrained(archive)`).
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

LLM_MODES = ("copy", "merged")  # espnet_llm.packing.LLM_MODES


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", type=Path, required=True, help="a trained exp dir (config.yaml + model file)")
    parser.add_argument("--model", default=None,
                        help="model file: a name in the exp dir or a path (default: valid.acc.ave.pth, or the first "
                             "of valid.acc.best, valid.loss.ave, valid.loss.best, latest there)")
    parser.add_argument("--out", type=Path, required=True,
                        help="archive to write: .zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz")
    parser.add_argument("--llm", choices=LLM_MODES, default="copy",
                        help="speech LLM only: copy = ship the base LLM dir, the LoRA weights stay in the model file; "
                             "merged = merge the LoRA adapters into a full Hugging Face LLM dir")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    from espnet_llm.packing import pack

    try:
        out = pack(args.exp_dir, args.out, model_file=args.model, llm=args.llm)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"pack: error: {e}")
    size = out.stat().st_size / 2**20
    print(f"pack: wrote {out} ({size:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
