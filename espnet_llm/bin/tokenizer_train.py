#!/usr/bin/env python3
"""Train a sentencepiece model (bpe / unigram) or a char list on a Kaldi `text` -> ESPnet token list.

Usage:
    python -m espnet_llm.bin.tokenizer_train --text data/train/text --token_type bpe --nbpe 30 \
        --out_dir data/token_list/bpe_unigram30
    python -m espnet_llm.bin.tokenizer_train --text data/train/text --token_type char \
        --out_dir data/token_list/char

Writes `<out_dir>/tokens.txt` (ESPnet order: `<blank>`, `<unk>`, units by frequency, `<sos/eos>`) and,
for bpe/unigram, `<out_dir>/bpe.model`. The token list is made by ESPnet's own `tokenize_text`.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

from espnet_llm import datadir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, required=True, help="Kaldi text file: <utt> WORDS...")
    parser.add_argument("--token_type", choices=["bpe", "unigram", "char"], default="bpe")
    parser.add_argument("--nbpe", type=int, default=30, help="sentencepiece vocabulary size")
    parser.add_argument("--out_dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import sentencepiece as spm
    from espnet2.bin.tokenize_text import tokenize

    args.out_dir.mkdir(parents=True, exist_ok=True)
    text = datadir.read_table(args.text)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "text.txt"
        plain.write_text("".join(t + "\n" for t in text.values()), encoding="utf-8")
        bpemodel = None
        if args.token_type != "char":
            prefix = Path(tmp) / "bpe"
            spm.SentencePieceTrainer.train(
                input=str(plain), model_prefix=str(prefix), vocab_size=args.nbpe,
                model_type="bpe" if args.token_type == "bpe" else "unigram",
                character_coverage=1.0, input_sentence_size=100000000, bos_id=-1, eos_id=-1, unk_id=0,
            )
            bpemodel = args.out_dir / "bpe.model"
            os.replace(f"{prefix}.model", bpemodel)
        tokens = args.out_dir / "tokens.txt"
        tokenize(
            input=str(plain), output=str(tokens) + ".tmp", field=None, delimiter=None,
            token_type="bpe" if bpemodel else "char", space_symbol="<space>", non_linguistic_symbols=None,
            bpemodel=str(bpemodel) if bpemodel else None, log_level="INFO", write_vocabulary=True,
            vocabulary_size=0, remove_non_linguistic_symbols=False, cutoff=0,
            add_symbol=["<blank>:0", "<unk>:1", "<sos/eos>:-1"], cleaner=None, g2p=None, add_nonsplit_symbol=[],
        )
        os.replace(str(tokens) + ".tmp", tokens)
    logging.info("wrote %s (%d tokens)", tokens, len(tokens.read_text().split("\n")) - 1)


if __name__ == "__main__":
    main()
