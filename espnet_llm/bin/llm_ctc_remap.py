#!/usr/bin/env python3
"""Move a speech LLM's trained CTC head onto another CTC vocabulary, so that training on new text keeps it.

Usage:
    python -m espnet_llm.bin.llm_ctc_remap --model exp/llm_asr_whisper_ft_lora/valid.acc.ave.pth \
        --old_vocab exp/llm_asr_whisper_ft_lora/ctc_vocab.txt \
        --new_vocab exp/llm_asr_whisper_ft_lora_synth/ctc_vocab.txt \
        --llm_dir exp/llm/smollm2-135m --out exp/llm_asr_whisper_ft_lora_synth/init_ctc_remapped.pth

A ``SubsetCTC`` head (``espnet_llm.asr.ctc``) has one output row per LLM id of its training transcripts. A model
trained further on other transcripts needs the vocabulary of those (``espnet_llm.bin.llm_ctc_vocab``); ESPnet's
``--init_param`` cannot load a head of another size, so without this the head would start again from random
weights (and its gradients would reach a fine-tuned encoder). ``espnet_llm.asr.ctc.remap_head`` keeps every row
of an id in both vocabularies and starts each new id from the "other" row, so the model scores every LLM id as it
did. The rest of the state dict is copied as it is. ``egs/TEMPLATE/asr1/llm_asr.sh`` stage 9 runs this when
``--llm_init_model``'s exp dir has a ``ctc_vocab.txt`` other than the new one.
"""
import argparse
import sys
from pathlib import Path

WEIGHT, BIAS = "ctc.ctc_lo.weight", "ctc.ctc_lo.bias"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a speech LLM's model file (*.pth state dict)")
    parser.add_argument("--old_vocab", type=Path, required=True, help="the ctc_vocab.txt it was trained with")
    parser.add_argument("--new_vocab", type=Path, required=True, help="the ctc_vocab.txt to move its head onto")
    parser.add_argument("--llm_dir", required=True, help="the LLM directory (its config gives the vocabulary size)")
    parser.add_argument("--out", type=Path, required=True, help="the model file to write")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    import torch
    from transformers import AutoConfig

    from espnet_llm.asr.ctc import read_token_ids, remap_head

    try:
        vocab_size = AutoConfig.from_pretrained(args.llm_dir, local_files_only=True).vocab_size
    except (OSError, ValueError) as e:
        sys.exit(f"llm_ctc_remap: cannot read the LLM config in '{args.llm_dir}': {e}")
    try:
        state = torch.load(args.model, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        sys.exit(f"llm_ctc_remap: cannot read model '{args.model}': {e}")
    if WEIGHT not in state or BIAS not in state:
        sys.exit(f"llm_ctc_remap: '{args.model}' has no CTC head ({WEIGHT})")
    try:
        old_ids, new_ids = read_token_ids(args.old_vocab), read_token_ids(args.new_vocab)
        state[WEIGHT], state[BIAS] = remap_head(state[WEIGHT], state[BIAS], old_ids, new_ids, vocab_size)
    except (OSError, ValueError) as e:
        sys.exit(f"llm_ctc_remap: {args.model} with {args.old_vocab}: {e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(args.out)  # atomic: an interrupted run leaves no half-written model
    print(f"llm_ctc_remap: CTC head {len(old_ids)} -> {len(new_ids)} ids -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
