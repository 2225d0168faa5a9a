#!/usr/bin/env python3
"""Write the CTC vocabulary of a speech LLM: the LLM token ids its training transcripts use, one per line.

Usage:
    python -m espnet_llm.bin.llm_ctc_vocab --config conf/tuning/train_llm_asr_whisper_lora.yaml \
        --llm_dir exp/llm/smollm2-135m --text data/train/text --out exp/llm_asr_whisper_lora/ctc_vocab.txt
    python -m espnet_llm.bin.llm_ctc_vocab --llm_dir exp/llm/smollm2-135m --text data/train/text \
        --text data/dev/text --text_lowercase true --out ctc_vocab.txt
    python -m espnet_llm.bin.llm_ctc_vocab --config conf/train_llm_asr.yaml \
        --text data/train_synth/text --include exp/llm_asr_whisper_ft_lora/ctc_vocab.txt \
        --out exp/llm_asr_whisper_ft_lora_synth/ctc_vocab.txt

The transcripts are tokenised exactly as the training preprocessor does (``LLMTextPreprocessor``; the config's
``text_lowercase`` and ``cleaner`` unless given here), so the training targets are all inside the vocabulary.
Each line is ``<id> <token>`` (the token for a reader; only the id is read back), sorted by id. The training
config takes the file as ``--ctc_vocab`` (``espnet_llm.asr.ctc.SubsetCTC``). ``--include`` keeps the ids of
another vocabulary too: a model trained further on new text (its head moved over by ``espnet_llm.bin.llm_ctc_remap``)
then keeps every token its CTC head has learned, not only those of the new transcripts.
"""
import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import yaml

from espnet_llm.datadir import read_table, write_text_atomic


def collect_ids(llm_dir: str, texts: Sequence[Path], text_lowercase: bool, cleaner: Optional[str]) -> Counter:
    """Counter of LLM token ids over every transcript of the Kaldi ``text`` files."""
    from espnet_llm.tasks.llm_asr import LLMTextPreprocessor

    pre = LLMTextPreprocessor(train=False, llm_dir=llm_dir, text_lowercase=text_lowercase, text_cleaner=cleaner)
    counts = Counter()
    for path in texts:
        for utt, text in read_table(path).items():
            if not text.strip():
                raise ValueError(f"{path}: utterance '{utt}' has an empty transcript")
            counts.update(int(i) for i in pre(utt, {"text": text})["text"])
    return counts


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None,
                        help="training YAML: text_lowercase, cleaner and llm_conf.name_or_path are read from it")
    parser.add_argument("--llm_dir", default=None, help="LLM directory (default: the config's llm_conf.name_or_path)")
    parser.add_argument("--text", type=Path, action="append", required=True, help="Kaldi text file; repeatable")
    parser.add_argument("--text_lowercase", choices=["true", "false"], default=None,
                        help="lower-case before tokenising (default: the config's, else false)")
    parser.add_argument("--include", type=Path, action="append", default=[],
                        help="a ctc_vocab.txt whose ids are kept as well (e.g. the model trained further's); repeatable")
    parser.add_argument("--out", type=Path, required=True, help="the vocabulary file to write")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    config = {}
    if args.config is not None:
        try:
            with open(args.config, encoding="utf-8") as f:  # a stream: YAML errors name the file, line and column
                config = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as e:
            sys.exit(f"llm_ctc_vocab: cannot read config '{args.config}': {e}")
    llm_dir = args.llm_dir or (config.get("llm_conf") or {}).get("name_or_path")
    if not llm_dir:
        sys.exit("llm_ctc_vocab: give --llm_dir or a --config with llm_conf.name_or_path")
    lowercase = args.text_lowercase == "true" if args.text_lowercase else bool(config.get("text_lowercase", False))
    counts = collect_ids(llm_dir, args.text, lowercase, config.get("cleaner"))
    from espnet_llm.asr.ctc import read_token_ids
    from espnet_llm.asr.llm import load_tokenizer

    kept = set()
    for path in args.include:
        try:
            kept.update(read_token_ids(path))
        except (OSError, ValueError) as e:
            sys.exit(f"llm_ctc_vocab: --include: {e}")
    tokenizer = load_tokenizer(llm_dir)
    lines = [f"{i} {tokenizer.convert_ids_to_tokens(i)}" for i in sorted(set(counts) | kept)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    added = f" + {len(kept - set(counts))} kept from {' '.join(map(str, args.include))}" if args.include else ""
    print(f"llm_ctc_vocab: {len(counts)} token ids from {sum(counts.values())} tokens{added} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
