#!/usr/bin/env python3
"""Fine-tune a local causal LM on transcripts (Kaldi `text` files) for shallow fusion with the AM.

Usage:
    # LoRA on the LLM's own tokens (delayed fusion, N-best rescoring): lower-cased text + EOS, merged model saved
    python -m espnet_llm.bin.llm_text_train --llm exp/llm/smollm2-135m --text data/train/text \
        --text /work/shared/data/text/librispeech-dev-clean/text --out_dir exp/llm_text_an4 --epochs 3

    # shared units (label-wise fusion): embeddings re-initialised to the AM's BPE token list, full fine-tuning
    python -m espnet_llm.bin.llm_text_train --llm exp/llm/smollm2-135m --text data/train/text \
        --units am --token_list data/token_list/bpe30/tokens.txt --bpemodel data/token_list/bpe30/bpe.model \
        --out_dir exp/llm_text_an4_bpe30 --epochs 5

Each transcript becomes `[BOS] + tokens + [EOS]`, the loss is on the tokens and EOS (what the fusion scorers
score). Training is transformers' `Trainer`; LoRA is peft's (tuning lora), merged into the saved weights.

`--units llm` (default): the LLM's tokenizer, text put in `--text_case` (lower: AN4 is upper case, LLMs read
lower case better). `--units am`: the text is cut into the AM's BPE pieces (its case kept, as the AM's BPE was
trained on it) and the LLM's vocabulary becomes the AM's token list: `resize_token_embeddings(len(token_list))`,
and each row i is re-initialised to the mean of the old embeddings of the LLM tokens of piece i's text (`▁`
read as a space; `<sos/eos>` takes the LLM's EOS row, `<blank>` and `<unk>` the mean of all rows). Output
embeddings are tied to the input ones, or re-initialised the same way. BOS and EOS are the AM's `<sos/eos>` id.
The output directory then holds the model, `tokens.txt` and `bpe.model` (no HF tokenizer: the AM's units are used).

Writes `{out_dir}/train_log.tsv` (step, loss) and `{out_dir}/meta.json` (the options, the trained parameters and
the wall time), then `{out_dir}/.done`. A rerun with the same options into a done `out_dir` does nothing (the
fusion decodings made with it stay valid); other options train it again.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import List, Optional, Sequence

IGNORE = -100


def read_kaldi_text(paths: Sequence[str]) -> List[str]:
    """The transcripts (without utterance ids) of Kaldi `text` files; empty transcripts are skipped."""
    from espnet_llm.datadir import text_lines

    texts = []
    for path in paths:
        for _, line in text_lines(path):  # errors name the file and line of bytes that are not UTF-8
            parts = line.strip().split(maxsplit=1)
            if len(parts) == 2:
                texts.append(" ".join(parts[1].split()))
    if not texts:
        raise ValueError(f"no transcripts in {', '.join(paths)}")
    return texts


def read_token_list(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def resize_to_am_units(llm: torch.nn.Module, tokenizer, token_list: Sequence[str]) -> int:
    """Make the LLM's vocabulary the AM's token list (see the module doc); returns the `<sos/eos>` id."""
    import torch

    old_in = llm.get_input_embeddings().weight.detach().clone()
    out_layer = llm.get_output_embeddings()
    tied = out_layer is None or out_layer.weight.data_ptr() == llm.get_input_embeddings().weight.data_ptr()
    old_out = None if tied else out_layer.weight.detach().clone()
    llm_eos = tokenizer.eos_token_id

    def init_rows(old: torch.Tensor) -> torch.Tensor:
        rows = []
        for piece in token_list:
            if piece == "<sos/eos>":
                rows.append(old[llm_eos])
            elif piece in ("<blank>", "<unk>"):
                rows.append(old.mean(0))
            else:
                ids = tokenizer(piece.replace("▁", " ").lower(), add_special_tokens=False)["input_ids"]
                rows.append(old[ids].mean(0) if ids else old.mean(0))
        return torch.stack(rows)

    llm.resize_token_embeddings(len(token_list))
    with torch.no_grad():
        llm.get_input_embeddings().weight.copy_(init_rows(old_in))
        if old_out is not None:
            llm.get_output_embeddings().weight.copy_(init_rows(old_out))
    sos_eos = token_list.index("<sos/eos>")
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(llm.config, attr, sos_eos)
        if getattr(llm, "generation_config", None) is not None:
            setattr(llm.generation_config, attr, sos_eos)
    return sos_eos


def collate(batch: List[dict], pad_id: int) -> dict:
    """Right-pad to the longest; labels are the inputs (the model shifts them) with -100 on BOS and padding."""
    import torch

    width = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for i, b in enumerate(batch):
        ids[i, : len(b["input_ids"])] = torch.tensor(b["input_ids"])
        mask[i, : len(b["input_ids"])] = 1
    labels = ids.masked_fill(mask == 0, IGNORE)
    labels[:, 0] = IGNORE
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train(args: argparse.Namespace) -> List[float]:
    import torch
    from transformers import Trainer, TrainingArguments

    from espnet_llm.asr.llm import load_causal_lm, load_tokenizer, merge_lora_and_save

    texts = read_kaldi_text(args.text)
    tokenizer = load_tokenizer(args.llm)
    tuning = args.tuning or ("full" if args.units == "am" else "lora")
    lora_conf = dict(r=args.lora_r, alpha=args.lora_alpha, dropout=0.0) if tuning == "lora" else None
    llm = load_causal_lm(args.llm, tuning=tuning, lora_conf=lora_conf)
    trainable = sum(p.numel() for p in llm.parameters() if p.requires_grad)
    if args.units == "am":
        if args.token_list is None or args.bpemodel is None:
            raise ValueError("--units am needs --token_list and --bpemodel (the AM's)")
        import sentencepiece as spm

        token_list = read_token_list(args.token_list)
        base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
        bos = eos = resize_to_am_units(base, tokenizer, token_list)
        sp = spm.SentencePieceProcessor(model_file=args.bpemodel)
        index = {p: i for i, p in enumerate(token_list)}
        unk = index.get("<unk>", 1)
        body = [[index.get(p, unk) for p in sp.encode(t, out_type=str)] for t in texts]
    else:
        eos = tokenizer.eos_token_id
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
        cased = [t.lower() if args.text_case == "lower" else t.upper() if args.text_case == "upper" else t for t in texts]
        body = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in cased]
    sequences = [[bos] + ids + [eos] for ids in body]
    logging.info(f"{len(sequences)} transcripts, {sum(map(len, sequences))} tokens, units {args.units}, tuning {tuning}")

    out_dir = Path(args.out_dir)
    targs = TrainingArguments(
        output_dir=str(out_dir / "trainer"),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        use_cpu=args.ngpu == 0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=llm,
        args=targs,
        train_dataset=[{"input_ids": s} for s in sequences],  # a map-style dataset
        data_collator=lambda batch: collate(batch, pad_id=eos),
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    diverged = [n for n, p in llm.named_parameters() if p.requires_grad and not bool(torch.isfinite(p).all())]
    if diverged:  # Trainer logs a NaN gradient norm and goes on; a model of NaN weights must not be saved
        shutil.rmtree(out_dir / "trainer", ignore_errors=True)
        raise RuntimeError(f"training diverged: {len(diverged)} trained tensors hold NaN or inf (first: {diverged[0]}); "
                           f"nothing written to {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    llm.eval()
    if args.units == "am":
        base = llm.merge_and_unload() if hasattr(llm, "merge_and_unload") else llm
        base.save_pretrained(str(out_dir))
        shutil.copy(args.token_list, out_dir / "tokens.txt")
        shutil.copy(args.bpemodel, out_dir / "bpe.model")
    else:
        merge_lora_and_save(llm, out_dir, tokenizer_dir=args.llm)
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)
    with open(out_dir / "train_log.tsv", "w") as f:
        f.write("step\tloss\n" + "".join(f"{i}\t{loss:.6f}\n" for i, loss in enumerate(losses, 1)))
    args.trainable_params = trainable
    return losses


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", required=True, help="local Hugging Face causal LM directory")
    parser.add_argument("--text", required=True, action="append", help="Kaldi text file (repeatable)")
    parser.add_argument("--out_dir", required=True, help="merged model (+ tokenizer or AM units) goes here")
    parser.add_argument("--units", default="llm", choices=("llm", "am"), help="am: the AM's BPE token list")
    parser.add_argument("--token_list", help="the AM's tokens.txt (--units am)")
    parser.add_argument("--bpemodel", help="the AM's bpe.model (--units am)")
    parser.add_argument("--tuning", choices=("lora", "full"), help="default: lora for --units llm, full for am")
    parser.add_argument("--lora_r", type=int, default=8)
    parser.add_argument("--lora_alpha", type=int, default=16)
    parser.add_argument("--text_case", default="lower", choices=("keep", "lower", "upper"), help="--units llm")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max_steps", type=int, default=-1, help=">0: stop after this many steps")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ngpu", type=int, default=0)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level="INFO", format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    import time

    from espnet_llm.exp_dir import clear_done, is_done, mark_done
    from espnet_llm.runinfo import update_meta

    options = {k: v for k, v in sorted(vars(args).items())}
    if Path(args.llm).is_dir() and (Path(args.llm) / "config.json").is_file():
        from espnet_llm.asr.llm import llm_fingerprint

        options["llm_fingerprint"] = llm_fingerprint(args.llm)  # another LLM under the same path trains again
    meta = Path(args.out_dir) / "meta.json"
    if is_done(args.out_dir) and meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("options") == options:
        logging.info(f"{args.out_dir} is done with these options: nothing to train (delete it to train again)")
        return
    start = time.time()
    try:
        if Path(args.out_dir).is_dir():
            clear_done(args.out_dir)
        losses = train(args)
    except (ValueError, FileNotFoundError) as e:
        logging.error(str(e))
        sys.exit(1)
    update_meta(args.out_dir, options=options, trainable_params=args.trainable_params,
                train_wall_s=round(time.time() - start, 1))
    mark_done(args.out_dir)
    logging.info(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; saved to {args.out_dir}")


if __name__ == "__main__":
    main()
