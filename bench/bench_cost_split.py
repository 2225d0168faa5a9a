#!/usr/bin/env python3
"""Where the speech LLM's decoding time goes: encoder, LLM prefill, LLM steps, KV-cache copies, CTC prefix scores.

Usage:
    # AN4 test set, the Whisper-input speech LLM: greedy, and beam 10 with joint CTC 0.3, every utterance
    cd egs/an4/asr1 && OMP_NUM_THREADS=2 python ../../../bench/bench_cost_split.py \
        --exp_dir exp/llm_asr_whisper_ft_lora --llm_data data/test/wav.scp,speech,sound --text data/test/text \
        --threads 2 --report ../../../bench/results/report.md
    # the first 20 utterances with the LLM's forward on OpenVINO (int8 weights), beam 4
    python ../../../bench/bench_cost_split.py --exp_dir exp/llm_asr_whisper_ft_lora \
        --llm_data data/test/wav.scp,speech,sound --num_utts 20 --beam_size 4 --engine openvino:int8
    # on a GPU (every timed call synchronises CUDA before and after)
    python ../../../bench/bench_cost_split.py --exp_dir exp/llm_asr_whisper_ft_lora \
        --llm_data data/test/wav.scp,speech,sound --device cuda
    # end-to-end on tiny random models (seconds; what test/bench/test_bench_smoke.py runs)
    python bench/bench_cost_split.py --smoke

Modes (Speech2TextLLM as bench/bench_decode.py builds them; each over the same utterances, one at a time, after one
untimed warm-up utterance):
    llm_greedy     greedy search (beam 1, no CTC)
    llm_beam_ctc   ESPnet's beam search (--beam_size) with the KV-cache LLM scorer and joint CTC prefix scores
                   (--ctc_weight; llm_beam without a CTC head or with --ctc_weight 0)

Parts: the wall time of a mode is split by timing the real calls on the live objects (their bound methods, and two
names of espnet_llm.decode.llm_scorer, replaced for the run by a wrapper that calls the original, synchronising CUDA
before and after on a GPU, and restored afterwards). A timed call inside another timed call counts for its own
part only (the outer part gets its exclusive time), so nothing is counted twice; "rest" is the total less the parts.
    encoder + projector   Speech2TextLLM.encode: encoder, projector, prompt: the audio prefix
    CTC best path         Speech2TextLLM.ctc_text: the CTC head's greedy text (hallucination guard; CTC models)
    LLM prefill           LLM forwards over the prefix (the call whose KV cache is empty): greedy: the whole
                          prefix; beam: all but its last position (LLMPrefixScorer.batch_init_state)
    LLM step forwards     the other LLM forwards: one token per running hypothesis (DynamicCache's append inside)
    KV-cache gather       llm_scorer.gather_rows: the beam's cache rows in the order of the surviving hypotheses
    KV-cache copy         llm_scorer's DynamicCache(ddp_cache_data=...) before each step: transformers copies every
                          layer into the new cache (a cat onto an empty tensor)
    CTC prefix scoring    CTCPrefixScorer.batch_init_state (CTC log-softmax, CTCPrefixScoreTH), batch_score_partial
                          (one call per beam step: the calls column) and select_state
    rest                  search bookkeeping: ESPnet's top-k and hypothesis selection, length bonus, the
                          stop test, detokenising, Python
The figures go to bench/results/<date>.json (--out) as an entry with script "bench_cost_split", and with --report
into a section of a Markdown report (as bench_decode.py's --report; default title "<data dir> cost split").
"""
import argparse
import functools
import logging
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from espnet2.utils.types import str2triple_str

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_decode import load_utterances, seconds_of, word_error_rate  # noqa: E402
from common import append_result, run_facts, setup, sync, table, timed, write_report_section  # noqa: E402

import espnet_llm.decode.llm_scorer as llm_scorer  # noqa: E402
from espnet_llm.bin.llm_asr_inference import Speech2TextLLM, find_model_files  # noqa: E402
from espnet_llm.decode.engine import load_engine  # noqa: E402

PARTS = ("encoder + projector", "CTC best path", "LLM prefill", "LLM step forwards", "KV-cache gather",
         "KV-cache copy", "CTC prefix scoring")
REST = "rest"


class CostSplit:
    """Exclusive wall time and calls per part of the calls wrapped with `wrap`; `restore` undoes every wrap."""

    def __init__(self, device: str):
        self.device = device
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self._open = []  # per open timed call: seconds spent in timed calls inside it
        self._undo = []

    def timing(self, fn, part, count: bool = True):
        """`fn` timed into `part` (a name, or a function of (args, kwargs) giving one; None: not timed)."""

        def wrapper(*args, **kwargs):
            name = part(args, kwargs) if callable(part) else part
            if name is None:
                return fn(*args, **kwargs)
            sync(self.device)
            self._open.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync(self.device)
                elapsed = time.perf_counter() - start
                self.seconds[name] += elapsed - self._open.pop()
                self.calls[name] += int(count)
                if self._open:
                    self._open[-1] += elapsed

        return functools.update_wrapper(wrapper, fn, updated=())  # fn may be a class (DynamicCache)

    def wrap(self, owner, attr: str, part, count: bool = True) -> None:
        """Replace `owner.attr` (a bound method of a live object, a module's function or class) by its timed call."""
        own = vars(owner)
        self._undo.append((owner, attr, attr in own, own.get(attr)))
        setattr(owner, attr, self.timing(getattr(owner, attr), part, count))

    def restore(self) -> None:
        for owner, attr, had, old in reversed(self._undo):
            if had:
                setattr(owner, attr, old)
            else:
                delattr(owner, attr)
        self._undo.clear()


def llm_part(args, kwargs):
    """An LLM forward: the prefill when it starts from an empty KV cache, else a step."""
    cache = kwargs.get("past_key_values")
    empty = cache is None or (hasattr(cache, "get_seq_length") and cache.get_seq_length() == 0)
    return "LLM prefill" if empty else "LLM step forwards"


def cache_copy_part(args, kwargs):
    """llm_scorer's DynamicCache(...): timed only when it is built from cache data (a copy)."""
    return "KV-cache copy" if (args and args[0] is not None) or kwargs.get("ddp_cache_data") is not None else None


def instrument(split: CostSplit, s2t: Speech2TextLLM) -> None:
    split.wrap(s2t, "encode", "encoder + projector")
    if getattr(s2t.model, "ctc", None) is not None:
        split.wrap(s2t, "ctc_text", "CTC best path")
    split.wrap(s2t.llm, "forward", llm_part)  # the engine (the HF model for hf): greedy and the beam's scorer call it
    split.wrap(llm_scorer, "gather_rows", "KV-cache gather")
    split.wrap(llm_scorer, "DynamicCache", cache_copy_part, count=True)
    ctc = s2t.beam_search.scorers.get("ctc")
    if ctc is not None:
        split.wrap(ctc, "batch_init_state", "CTC prefix scoring", count=False)
        split.wrap(ctc, "batch_score_partial", "CTC prefix scoring")
        split.wrap(ctc, "select_state", "CTC prefix scoring", count=False)


def split_mode(name, s2t, utterances, device):
    """Decode every utterance (after a warm-up) with the parts timed; the row dict (parts: {part: (seconds, calls)})."""
    s2t(utterances[0][1])
    split = CostSplit(device)
    instrument(split, s2t)
    try:
        hyps, total = timed(lambda: [s2t(speech)[0] for _, speech in utterances], device)
    finally:
        split.restore()
    parts = {p: (split.seconds.get(p, 0.0), split.calls.get(p, 0)) for p in PARTS}
    parts[REST] = (total - sum(s for s, _ in parts.values()), None)
    audio = sum(seconds_of(s) for _, s in utterances)
    return dict(mode=name, utts=len(utterances), audio_s=audio, total_s=total, rtf=total / audio, parts=parts,
                hyps=hyps)


def searches(args, device):
    config, model_file = find_model_files(args.exp_dir)
    first = Speech2TextLLM.from_pretrained(asr_train_config=config, asr_model_file=model_file, device=device,
                                           maxlenratio=args.maxlenratio)
    model, tokenizer = first.model, first.tokenizer
    name, precision = args.engine.split(":") if ":" in args.engine else (args.engine, "f32")
    llm = first.llm if name == "hf" else load_engine(model.llm, name, precision, None)
    kwargs = dict(maxlenratio=args.maxlenratio, device=device, llm_engine=llm)
    out = [("llm_greedy", Speech2TextLLM(model, tokenizer, **kwargs))]
    if getattr(model, "ctc", None) is not None and args.ctc_weight > 0:
        out.append(("llm_beam_ctc", Speech2TextLLM(model, tokenizer, beam_size=args.beam_size,
                                                   ctc_weight=args.ctc_weight, **kwargs)))
    else:
        out.append(("llm_beam", Speech2TextLLM(model, tokenizer, beam_size=args.beam_size, **kwargs)))
    return out


def split_table(rows) -> str:
    lines = []
    for r in rows:
        n = r["utts"]
        for part, (seconds, calls) in r["parts"].items():
            lines.append([r["mode"], part, seconds, 100 * seconds / r["total_s"], 1000 * seconds / n, calls,
                          1000 * seconds / calls if calls else None])
        lines.append([r["mode"], "total", r["total_s"], 100.0, 1000 * r["total_s"] / n, None, None])
    return table(["mode", "part", "seconds", "share %", "ms/utt", "calls", "ms/call"], lines)


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", type=Path, help="speech LLM exp dir")
    parser.add_argument("--llm_data", type=str2triple_str, default=None,
                        help="speech LLM input, e.g. data/test/wav.scp,speech,sound or dump/fbank/test/feats.scp,speech,kaldi_ark")
    parser.add_argument("--text", type=Path, help="Kaldi text of the set: each mode's WER (a check that it decodes)")
    parser.add_argument("--num_utts", type=int, default=1000000, help="first N utterances of the set (default: all)")
    parser.add_argument("--beam_size", type=int, default=10)
    parser.add_argument("--ctc_weight", type=float, default=0.3, help="joint CTC weight of the beam mode")
    parser.add_argument("--maxlenratio", type=float, default=0.5, help="speech LLM length bound (tokens / frame)")
    parser.add_argument("--engine", default="hf:f32",
                        help="what runs the LLM's forward (espnet_llm.decode.engine), e.g. openvino:int8")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the figures as JSON (default: bench/results/<date>.json, not with --smoke; "
                             "- : none)")
    parser.add_argument("--report", type=Path, default=None,
                        help="Markdown file: write this run as its section '## <report_title>' (as bench_decode.py)")
    parser.add_argument("--report_title", default=None,
                        help="the section's title (default: '<data dir name> cost split', e.g. 'test cost split')")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny random models in a temporary dir")
    parser.add_argument("--verbose", action="store_true", help="keep the decoders' log (warnings and info)")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    command = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    device = setup(args.device, args.threads)
    if not args.verbose:
        logging.disable(logging.WARNING)
    title = args.report_title or ("smoke cost split" if args.smoke else
                                  f"{Path((args.llm_data or ('',))[0]).parent.name} cost split")
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            from smoke_models import build

            tiny = build(Path(tmp))
            args.exp_dir, args.llm_data = tiny["llm_exp"], (str(tiny["feats"]), "speech", "kaldi_ark")
            args.beam_size, args.num_utts, args.text = 3, min(args.num_utts, 3), tiny.get("text")
        if args.exp_dir is None or args.llm_data is None:
            sys.exit("bench_cost_split: give --exp_dir and --llm_data (or --smoke)")
        start = time.perf_counter()
        utterances = load_utterances(args.llm_data, args.num_utts)
        rows = [split_mode(name, s2t, utterances, device) for name, s2t in searches(args, device)]
        if args.text:
            word_error_rate(rows, utterances, args.text)
    summary = (f"{len(utterances)} utterances, {rows[0]['audio_s']:.1f} s of audio, device {device}, "
               f"{args.threads} threads, engine {args.engine}, beam {args.beam_size}, ctc_weight {args.ctc_weight}")
    print(f"# bench_cost_split: {summary} ({time.perf_counter() - start:.0f} s in all)")
    modes = "; ".join(f"{r['mode']}: RTF {r['rtf']:.3g}" + (f", WER {r['wer']:.1f} %" if "wer" in r else "")
                      for r in rows)
    print(f"# {modes}")
    print(split_table(rows))
    if args.report is not None:
        extra = [f"engine {args.engine}, beam {args.beam_size}, ctc_weight {args.ctc_weight}; speech LLM "
                 + ("tiny random models (--smoke): the figures measure nothing real" if args.smoke else str(args.exp_dir)),
                 modes]
        write_report_section(args.report, title, run_facts(str(device), len(utterances), rows[0]["audio_s"], command,
                                                           extra) + "\n\n" + split_table(rows))
        print(f"# report section '## {title}' written to {args.report}")
    if str(args.out) != "-" and (not args.smoke or args.out is not None):
        out = append_result(args.out, dict(
            script="bench_cost_split", command=" ".join(sys.argv), threads=args.threads, device=str(device),
            engine=args.engine, beam_size=args.beam_size, ctc_weight=args.ctc_weight, exp_dir=str(args.exp_dir),
            rows=[dict({k: v for k, v in r.items() if k not in ("hyps", "parts")},
                       parts=[dict(part=p, seconds=s, share=s / r["total_s"], ms_per_utt=1000 * s / r["utts"],
                                   calls=c, ms_per_call=1000 * s / c if c else None)
                              for p, (s, c) in r["parts"].items()])
                  for r in rows]))
        print(f"# written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
