#!/usr/bin/env python3
"""Training throughput (audio seconds per wall second) and peak memory of the speech LLM per LLM tuning mode.

Usage:
    # AN4, the recipe's LoRA config over fbank, SmolLM2-135M frozen / LoRA / fully tuned, 10 steps of 8 utterances
    cd egs/an4/asr1 && python ../../../bench/bench_train.py --config conf/tuning/train_llm_asr_conformer_lora_stride80.yaml \
        --llm exp/llm/smollm2-135m --data dump/fbank/train/feats.scp,speech,kaldi_ark --text data/train/text \
        --task_args "--input_size 80 --normalize_conf stats_file=exp/asr_stats_fbank/train/feats_stats.npz" \
        --batch_size 8 --steps 10 --threads 2
    # Whisper encoder on raw audio, on a GPU
    python ../../../bench/bench_train.py --config conf/tuning/train_llm_asr_whisper_lora.yaml \
        --llm exp/llm/smollm2-135m --data data/train/wav.scp,speech,sound --text data/train/text \
        --task_args "--encoder_conf model_dir=exp/whisper/tiny.en" --device cuda --steps 20
    # end-to-end on tiny random models (seconds; what test/bench/test_bench_smoke.py runs)
    python bench/bench_train.py --smoke

For each mode (`--modes frozen lora full`) the model is built from --config with `llm_conf.tuning` set to the mode,
then trained with Adam (--lr) for --steps optimizer steps over batches of --batch_size utterances (the first ones
of the set, cycled) after --warmup untimed steps. Columns: trainable parameters, audio s / wall s, wall s per step,
peak RSS (sampled) and, on CUDA, peak GPU memory. The loss of the last step shows that each mode trained.
"""
import argparse
import itertools
import logging
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
from espnet2.utils.types import str2triple_str

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakMemory, setup, sync, table, timed  # noqa: E402

from espnet_llm.bin.llm_asr_inference import audio_seconds  # noqa: E402
from espnet_llm.tasks.llm_asr import LLMASRTask  # noqa: E402


def batches(args, task_args, device):
    """A list of training batches (ESPnet's reader, the LLM tokenizer's preprocessor, ESPnet's collate)."""
    loader = LLMASRTask.build_streaming_iterator(
        [args.data, (str(args.text), "text", "text")], dtype="float32", batch_size=args.batch_size, num_workers=0,
        preprocess_fn=LLMASRTask.build_preprocess_fn(task_args, True),
        collate_fn=LLMASRTask.build_collate_fn(task_args, True), inference=False,
    )
    out = []
    for _, batch in itertools.islice(loader, args.steps + args.warmup):
        out.append({k: v.to(device) for k, v in batch.items()})
    return out


def bench_mode(args, mode, device):
    parser = LLMASRTask.get_parser()
    task_args = parser.parse_args(["--config", str(args.config), "--llm_conf", f"name_or_path={args.llm}",
                                   "--llm_conf", f"tuning={mode}", *shlex.split(args.task_args)])
    torch.manual_seed(0)
    model = LLMASRTask.build_model(task_args).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=args.lr)
    data = batches(args, task_args, device)
    fs = (task_args.frontend_conf or {}).get("fs", 16000)

    def step(batch):
        loss, _, _ = model(**batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    cycle = itertools.cycle(data)
    for _ in range(args.warmup):
        step(next(cycle))
    timed_batches = [next(cycle) for _ in range(args.steps)]
    with PeakMemory(device) as memory:
        losses, wall = timed(lambda: [step(b) for b in timed_batches], device)
    audio = sum(audio_seconds(b["speech_lengths"].cpu(), b["speech"], fs) for b in timed_batches)
    sync(device)
    return dict(mode=mode, trainable=sum(p.numel() for p in params), audio=audio, wall=wall,
                throughput=audio / wall, step=wall / args.steps, rss=memory.rss_gib, gpu=memory.gpu_gib,
                loss=losses[-1])


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="speech LLM training YAML")
    parser.add_argument("--llm", help="the LLM directory (llm_conf.name_or_path)")
    parser.add_argument("--data", type=str2triple_str, help="speech input, e.g. dump/fbank/train/feats.scp,speech,kaldi_ark")
    parser.add_argument("--text", type=Path, help="Kaldi text of the set")
    parser.add_argument("--task_args", default="", help="more options of the task, e.g. \"--input_size 80 ...\"")
    parser.add_argument("--modes", nargs="+", default=["frozen", "lora", "full"], choices=["frozen", "lora", "full"])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny random models in a temporary dir")
    parser.add_argument("--verbose", action="store_true", help="keep the task's log")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    device = setup(args.device, args.threads)
    if not args.verbose:
        logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            from smoke_models import build

            tiny = build(Path(tmp))
            args.config, args.llm, args.text = tiny["config"], str(tiny["llm"]), tiny["text"]
            args.data = (str(tiny["feats"]), "speech", "kaldi_ark")
            args.task_args = " ".join(shlex.quote(a) for a in tiny["task_args"])
            args.batch_size, args.steps = 2, min(args.steps, 3)
        if args.config is None or args.llm is None or args.data is None or args.text is None:
            sys.exit("bench_train: give --config, --llm, --data and --text (or --smoke)")
        start = time.perf_counter()
        rows = [bench_mode(args, mode, device) for mode in args.modes]
    print(f"# bench_train: {args.config}, batch {args.batch_size}, {args.steps} steps per mode, device {device}, "
          f"{args.threads} threads ({time.perf_counter() - start:.0f} s in all)")
    print(table(["tuning", "trainable params", "audio s", "wall s", "audio s / wall s", "s / step", "peak RSS GiB",
                 "peak GPU GiB", "last loss"],
                [[r["mode"], r["trainable"], r["audio"], r["wall"], r["throughput"], r["step"], r["rss"], r["gpu"],
                  r["loss"]] for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
