#!/usr/bin/env python3
"""Decoding cost per mode: real-time factor, ratio to ESPnet's own beam search on the baseline AM, cost floor, memory.

Usage:
    # AN4 test set (130 utterances): speech LLM (conformer input) vs the conformer AM, with both fusion LLMs
    cd egs/an4/asr1 && OMP_NUM_THREADS=2 python ../../../bench/bench_decode.py \
        --exp_dir exp/llm_asr_lora_stride80 --am_exp_dir exp/asr_conformer \
        --data dump/fbank/test/feats.scp,speech,kaldi_ark --text data/test/text \
        --fusion_llm exp/llm_text_an4 --labelwise_llm exp/llm_text_an4_bpe30 --threads 2
    # Whisper-input speech LLM: its own raw-audio input, the AM keeps the fbank features
    python ../../../bench/bench_decode.py --exp_dir exp/llm_asr_whisper_lora --llm_data data/test/wav.scp,speech,sound \
        --am_exp_dir exp/asr_conformer --data dump/fbank/test/feats.scp,speech,kaldi_ark --text data/test/text \
        --num_utts 40 --device cuda
    # the LLM engines: every speech-LLM mode on OpenVINO (f32, bf16, int8 weights) and ONNX Runtime, WER from --text
    python ../../../bench/bench_decode.py --exp_dir exp/llm_asr_whisper_ft_lora --llm_data data/test/wav.scp,speech,sound \
        --am_exp_dir exp/asr_conformer --data dump/fbank/test/feats.scp,speech,kaldi_ark --text data/test/text \
        --engines "openvino:f32 openvino:bf16 openvino:int8 onnxruntime:f32" --fusion_llm exp/llm_text_an4 --threads 2
    # the same figures as a section "## test" of a Markdown report (a rerun replaces that section), with targets
    python ../../../bench/bench_decode.py --exp_dir exp/llm_asr_whisper_ft_lora --llm_data data/test/wav.scp,speech,sound \
        --text data/test/text --llm_modes "llm_greedy llm_beam_ctc" --threads 2 \
        --report ../../../bench/results/report.md --targets "rtf<=0.5 wer<=10"
    # end-to-end on tiny random models (seconds; what test/bench/test_bench_smoke.py runs)
    python bench/bench_decode.py --smoke

Modes (each over the same utterances, one at a time, after one warm-up utterance):
    am_beam               ESPnet's Speech2Text on the AM (beam --beam_size, CTC weight --am_ctc_weight): the reference
    am_fusion_labelwise   + the LLM on the AM's units (--labelwise_llm), label-wise shallow fusion
    am_fusion_delayed     + the LLM with its own tokenizer (--fusion_llm), delayed fusion (--delay, default token)
    am_rescore            the AM's n-best rescored by --fusion_llm
    llm_greedy            the speech LLM, greedy search
    llm_greedy_speculative  greedy search verifying the CTC head's best path as a draft (--draft_window tokens per
                          LLM forward; same output, checked); the share of draft tokens accepted, forwards per token
    llm_greedy_batchN     the same, N utterances a batch (--greedy_batch_size; offline throughput, same output)
    llm_greedy_speculative_batchN  speculative greedy, N utterances a batch (forwards per token: batched forwards)
    llm_beam              the speech LLM, ESPnet beam search with the KV-cache LLM scorer
    llm_beam_ctc          + joint CTC prefix scores (--ctc_weight; only for a model with a CTC head)
    <mode>@<engine>_<precision>  the speech-LLM modes again with the LLM's forward on another engine (--engines,
                          espnet_llm.decode.engine; exported once per run, not timed); "same as hf": the share of
                          utterances whose 1-best equals the hf engine's in that mode

Columns: RTF = decoding wall time / audio duration; xAM = RTF / RTF of am_beam; floor = decoding time / time of one
teacher-forced forward of the same model over the same utterances and 1-best hypotheses (the LLM forward for the
speech LLM; AM forward, plus the fusion LLM's forward over the hypothesis text, for the AM modes): how far the
search is from the cost of scoring its own answer once; peak RSS (sampled) and, on CUDA, peak GPU memory; WER (%)
against --text, case-insensitive.

Report (--report FILE): a section `## <--report_title>` (default: the data's directory name, e.g. "test") in a
Markdown file, replaced by a rerun with the same title, other sections kept: the command as run (from the repo
root's relative dir), date, CPU model, device, torch threads, utterances and audio, the table above, and with
--targets ("rtf<=0.5 x_am<=3 wer<=10": <figure><op><number> on the rows' JSON keys) which modes meet each target.
"""
import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch
from espnet2.utils.types import str2triple_str

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (PeakMemory, append_result, parse_targets, run_facts, setup, table, targets_line,  # noqa: E402
                    timed, write_report_section)

from espnet_llm.bin.llm_asr_inference import Speech2TextLLM, audio_seconds, find_model_files  # noqa: E402
from espnet_llm.decode.engine import load_engine  # noqa: E402
from espnet_llm.tasks.llm_asr import LLMASRTask  # noqa: E402


def load_utterances(spec, num_utts: int):
    """[(key, speech tensor)] of the first num_utts utterances of an ESPnet data spec (any type: sound, kaldi_ark)."""
    loader = LLMASRTask.build_streaming_iterator(
        [spec], dtype="float32", batch_size=1, num_workers=0, preprocess_fn=None,
        collate_fn=LLMASRTask.build_collate_fn(argparse.Namespace(), False), inference=True,
    )
    out = []
    for keys, batch in loader:
        out.append((keys[0], batch["speech"][0]))
        if len(out) >= num_utts:
            break
    return out


def seconds_of(speech: torch.Tensor, fs: int = 16000) -> float:
    return audio_seconds(torch.tensor([speech.shape[0]]), speech[None], fs)


def run_mode(name, decode, forward, utterances, device, decode_all=None):
    """Decode every utterance (after a warm-up), then one teacher-forced forward per 1-best; returns the row dict.

    `decode_all(speeches) -> hyps` replaces the one-at-a-time loop over `decode` (batched decoding)."""
    decode(utterances[0][1])
    decode_all = decode_all or (lambda speeches: [decode(speech) for speech in speeches])
    with PeakMemory(device) as memory:
        hyps, wall = timed(lambda: decode_all([speech for _, speech in utterances]), device)
    _, floor = timed(lambda: [forward(speech, hyp) for (_, speech), hyp in zip(utterances, hyps)], device)
    audio = sum(seconds_of(s) for _, s in utterances)
    return dict(mode=name, utts=len(utterances), audio_s=audio, wall_s=wall, rtf=wall / audio,
                floor=wall / max(floor, 1e-9), rss=memory.rss_gib, gpu=memory.gpu_gib, hyps=hyps)


def check_greedy_row(row, s2t, engine_rows, tag, forwards=None):
    """A greedy-search row: its draft figures when speculative (`forwards`: LLM forwards it counts, per utterance or
    batched; the warm-up utterance's draft work included), and "(DIFFERENT OUTPUT)" when its 1-bests are not plain
    greedy's of the same engine."""
    if s2t.speculative:
        d = s2t.draft_stats
        row["draft_accepted"] = d.accepted / max(d.proposed, 1)
        row["forwards_per_token"] = forwards / max(d.tokens, 1)
    plain = next((r for r in engine_rows if r["mode"] == "llm_greedy" + tag), None)
    if plain is not None and [h[1] for h in row["hyps"]] != [h[1] for h in plain["hyps"]]:
        row["mode"] += " (DIFFERENT OUTPUT)"


def llm_modes(args, utterances, device):
    config, model_file = find_model_files(args.exp_dir)
    greedy = Speech2TextLLM.from_pretrained(asr_train_config=config, asr_model_file=model_file, device=device,
                                            maxlenratio=args.maxlenratio)
    model, tokenizer = greedy.model, greedy.tokenizer

    @torch.no_grad()
    def forward(speech, hyp):
        ids = torch.tensor([hyp[1]], dtype=torch.long, device=device)
        speech = speech[None].to(device)
        model(speech, torch.tensor([speech.shape[1]], device=device), ids, torch.tensor([ids.shape[1]], device=device))

    rows = []
    for engine in ["hf:f32"] + [e for e in args.engines.split() if e != "hf:f32"]:
        name, precision = engine.split(":") if ":" in engine else (engine, "f32")
        tag = "" if engine == "hf:f32" else f"@{name}_{precision}"
        llm = greedy.llm if not tag else load_engine(model.llm, name, precision, None)
        kwargs = dict(maxlenratio=args.maxlenratio, device=device, llm_engine=llm)
        searches = [("llm_greedy", Speech2TextLLM(model, tokenizer, **kwargs)),
                    ("llm_beam", Speech2TextLLM(model, tokenizer, beam_size=args.beam_size, **kwargs))]
        if getattr(model, "ctc", None) is not None and args.ctc_weight > 0:
            searches.append(("llm_beam_ctc", Speech2TextLLM(model, tokenizer, beam_size=args.beam_size,
                                                            ctc_weight=args.ctc_weight, **kwargs)))
        if getattr(model, "ctc", None) is not None:
            searches.insert(1, ("llm_greedy_speculative", Speech2TextLLM(
                model, tokenizer, speculative=True, draft_window=args.draft_window, **kwargs)))
        if args.llm_modes:
            searches = [(name, s2t) for name, s2t in searches if name in args.llm_modes.split()]
        engine_rows = [run_mode(name + tag, lambda s, s2t=s2t: s2t(s)[0], forward, utterances, device)
                       for name, s2t in searches]
        for row, (_, s2t) in zip(engine_rows, searches):
            if s2t.speculative:
                check_greedy_row(row, s2t, engine_rows, tag, s2t.draft_stats.forwards)
        batched = [(f"llm_greedy_batch{args.greedy_batch_size}", Speech2TextLLM(model, tokenizer, **kwargs))]
        if getattr(model, "ctc", None) is not None:
            batched.append((f"llm_greedy_speculative_batch{args.greedy_batch_size}", Speech2TextLLM(
                model, tokenizer, speculative=True, draft_window=args.draft_window, **kwargs)))
        for name, s2t in batched if args.greedy_batch_size > 1 else []:
            if args.llm_modes and name.rstrip("0123456789") not in args.llm_modes:
                continue
            n = args.greedy_batch_size

            def decode_all(speeches, s2t=s2t):
                hyps = []
                for i in range(0, len(speeches), n):
                    chunk = speeches[i:i + n]
                    lengths = torch.tensor([s.shape[0] for s in chunk])
                    padded = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True)
                    hyps += [nbest[0] for nbest in s2t.decode_batch(padded, lengths)]
                return hyps

            row = run_mode(name + tag, lambda s, s2t=s2t: s2t(s)[0], forward, utterances, device, decode_all)
            check_greedy_row(row, s2t, engine_rows, tag, s2t.draft_stats.batch_forwards if s2t.speculative else None)
            # beside its one-at-a-time counterpart (else after the other greedy rows)
            modes = [r["mode"].split(" ")[0] for r in engine_rows]
            base = name.rsplit("_batch", 1)[0] + tag
            greedy = [i for i, m in enumerate(modes) if m.startswith("llm_greedy")]
            at = modes.index(base) + 1 if base in modes else (greedy[-1] + 1 if greedy else 0)
            engine_rows.insert(at, row)
        if tag:  # the share of utterances whose 1-best equals the reference engine's in the same mode
            reference = {r["mode"].split(" ")[0]: r for r in rows}
            for row in engine_rows:
                ref = reference.get(row["mode"].split(" ")[0].split("@")[0])
                if ref is not None:
                    row["same_as_hf"] = sum(a[1] == b[1] for a, b in zip(row["hyps"], ref["hyps"])) / len(row["hyps"])
        rows += engine_rows
    return rows


def word_error_rate(rows, utterances, text_file):
    """Each row's corpus WER (%) against the Kaldi `text_file` (case-insensitive; the hyp's text is hyp[0])."""
    import editdistance

    refs = dict(line.split(" ", 1) if " " in line else (line, "") for line in
                Path(text_file).read_text(encoding="utf-8").splitlines())
    words = [refs[key].upper().split() for key, _ in utterances]
    for row in rows:
        errors = sum(editdistance.eval(ref, hyp[0].upper().split()) for ref, hyp in zip(words, row["hyps"]))
        row["wer"] = 100.0 * errors / max(1, sum(map(len, words)))


def am_modes(args, utterances, device):
    from espnet_llm.bin.asr_fusion_inference import Speech2TextFusion, load_fusion_llm

    config, model_file = find_model_files(args.am_exp_dir)
    common = dict(beam_size=args.beam_size, ctc_weight=args.am_ctc_weight, maxlenratio=args.am_maxlenratio,
                  device=device)
    modes = [("am_beam", dict(fusion="none"), None)]
    if args.labelwise_llm:
        modes.append(("am_fusion_labelwise", dict(fusion="labelwise", llm=args.labelwise_llm), args.labelwise_llm))
    if args.fusion_llm:
        delayed = dict(fusion="delayed", llm=args.fusion_llm, delay=args.delay)
        modes.append(("am_fusion_delayed", delayed, args.fusion_llm))
        modes.append(("am_rescore", dict(fusion="rescore", llm=args.fusion_llm,
                                         nbest_rescore=min(10, args.beam_size)), args.fusion_llm))
    rows = []
    for name, fusion_kwargs, llm_dir in modes:
        s2t = Speech2TextFusion.build(config, model_file, lm_weight=args.lm_weight, **fusion_kwargs, **common)
        am = s2t.s2t.asr_model
        llm, tokenizer = load_fusion_llm(llm_dir, device) if llm_dir else (None, None)

        @torch.no_grad()
        def forward(speech, hyp, am=am, llm=llm, tokenizer=tokenizer):
            ids = [i for i in hyp[2] if i not in (0, am.sos, am.eos)] or [1]  # an empty 1-best: one <unk>
            speech = speech[None].to(device)
            text = torch.tensor([ids], device=device)
            am(speech, torch.tensor([speech.shape[1]], device=device), text, torch.tensor([len(ids)], device=device))
            if llm is not None:
                units = tokenizer(hyp[0].lower(), add_special_tokens=False)["input_ids"] if tokenizer else ids
                bos = llm.config.bos_token_id if llm.config.bos_token_id is not None else llm.config.eos_token_id
                llm(input_ids=torch.tensor([[bos, *units]], device=device))

        rows.append(run_mode(name, lambda s, s2t=s2t: s2t(s)[0], forward, utterances, device))
    return rows


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", type=Path, help="speech LLM exp dir")
    parser.add_argument("--am_exp_dir", type=Path, help="baseline ESPnet ASR exp dir (the reference; none: no AM modes)")
    parser.add_argument("--data", type=str2triple_str, help="features of the AM, e.g. dump/fbank/test/feats.scp,speech,kaldi_ark")
    parser.add_argument("--llm_data", type=str2triple_str, default=None, help="speech LLM input (default: --data)")
    parser.add_argument("--text", type=Path, help="Kaldi text of the set: the WER column")
    parser.add_argument("--engines", default="",
                        help="LLM engines measured beside hf, e.g. 'openvino:f32 openvino:bf16 openvino:int8 "
                             "onnxruntime:f32' (espnet_llm.decode.engine): every speech-LLM mode again on each")
    parser.add_argument("--num_utts", type=int, default=1000000, help="first N utterances of the set")
    parser.add_argument("--delay", default="token", choices=["word", "token"], help="delayed fusion's delay")
    parser.add_argument("--fusion_llm", default=None, help="text LLM with its tokenizer (delayed fusion, rescoring)")
    parser.add_argument("--labelwise_llm", default=None, help="text LLM on the AM's units (label-wise fusion)")
    parser.add_argument("--beam_size", type=int, default=10)
    parser.add_argument("--ctc_weight", type=float, default=0.3, help="speech LLM joint CTC weight")
    parser.add_argument("--llm_modes", default="",
                        help="only these speech-LLM modes, e.g. 'llm_greedy llm_greedy_batch llm_beam_ctc' (default: all)")
    parser.add_argument("--greedy_batch_size", type=int, default=8, help="llm_greedy_batchN mode; <= 1: off")
    parser.add_argument("--draft_window", type=int, default=16, help="llm_greedy_speculative: draft tokens per forward")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the figures as JSON (default: bench/results/<date>.json; - : none)")
    parser.add_argument("--am_ctc_weight", type=float, default=0.3)
    parser.add_argument("--lm_weight", type=float, default=0.3)
    parser.add_argument("--maxlenratio", type=float, default=0.5, help="speech LLM length bound (tokens / frame)")
    parser.add_argument("--am_maxlenratio", type=float, default=0.0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", type=Path, default=None,
                        help="Markdown file: write this run as its section '## <report_title>' (replacing one of the "
                             "same title, keeping the others)")
    parser.add_argument("--report_title", default=None,
                        help="the report section's title (default: the data dir's name, e.g. test; smoke: smoke)")
    parser.add_argument("--targets", default="",
                        help="e.g. 'rtf<=0.5 x_am<=3 wer<=10': print (and report) which modes meet each")
    parser.add_argument("--smoke", action="store_true", help="tiny random models in a temporary dir")
    parser.add_argument("--verbose", action="store_true", help="keep the decoders' log (warnings and info)")
    return parser


TARGET_KEYS = ("rtf", "x_am", "floor", "wall_s", "rss", "gpu", "wer", "draft_accepted", "forwards_per_token",
               "same_as_hf")


def results_table(rows) -> str:
    return table(["mode", "utts", "audio s", "wall s", "RTF", "xAM", "floor", "peak RSS GiB", "peak GPU GiB",
                  "draft accepted", "forwards/token", "same as hf", "WER"],
                 [[r["mode"], r["utts"], r["audio_s"], r["wall_s"], r["rtf"], r["x_am"], r["floor"], r["rss"], r["gpu"],
                   r.get("draft_accepted"), r.get("forwards_per_token"), r.get("same_as_hf"), r.get("wer")]
                  for r in rows])


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    command = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    targets = parse_targets(args.targets, TARGET_KEYS)
    device = setup(args.device, args.threads)
    if not args.verbose:
        logging.disable(logging.WARNING)
    title = args.report_title or ("smoke" if args.smoke else Path((args.llm_data or args.data or ("",))[0]).parent.name)
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            from smoke_models import build

            tiny = build(Path(tmp))
            args.exp_dir, args.am_exp_dir = tiny["llm_exp"], tiny["am_exp"]
            args.data = (str(tiny["feats"]), "speech", "kaldi_ark")
            args.fusion_llm, args.labelwise_llm = str(tiny["llm"]), str(tiny["unit_llm"])
            args.beam_size, args.num_utts, args.am_maxlenratio = 3, min(args.num_utts, 3), 0.3
            args.text = tiny.get("text")
        if args.exp_dir is None or (args.data is None and args.llm_data is None):
            sys.exit("bench_decode: give --exp_dir and --llm_data or --data (or --smoke); --am_exp_dir for the AM modes")
        start = time.perf_counter()
        llm_utts = load_utterances(args.llm_data or args.data, args.num_utts)
        am_utts = load_utterances(args.data, args.num_utts) if args.am_exp_dir else llm_utts
        if [k for k, _ in am_utts] != [k for k, _ in llm_utts]:
            sys.exit("bench_decode: --data and --llm_data list different utterances")
        rows = (am_modes(args, am_utts, device) if args.am_exp_dir else []) + llm_modes(args, llm_utts, device)
        if args.text:
            word_error_rate(rows, am_utts, args.text)
    reference = rows[0]["rtf"] if args.am_exp_dir else None  # xAM: against ESPnet's beam search on the AM
    for r in rows:
        r["x_am"] = r["rtf"] / reference if reference else None
    summary = (f"{len(llm_utts)} utterances, {rows[0]['audio_s']:.1f} s of audio, device {device}, "
               f"{args.threads} threads, beam {args.beam_size}")
    print(f"# bench_decode: {summary} ({time.perf_counter() - start:.0f} s in all)")
    print(results_table(rows))
    met = targets_line(rows, targets) if targets else None
    if met:
        print(f"# {met}")
    if args.report is not None:
        extra = [f"beam {args.beam_size}, speech LLM ctc_weight {args.ctc_weight}, AM ctc_weight {args.am_ctc_weight}"
                 f"; speech LLM {args.exp_dir}" + (f", AM {args.am_exp_dir}" if args.am_exp_dir else "")]
        if args.smoke:
            extra = ["tiny random models (--smoke): the figures measure nothing real"]
        extra += [met] if met else []
        write_report_section(args.report, title, run_facts(str(device), len(llm_utts), rows[0]["audio_s"], command,
                                                           extra) + "\n\n" + results_table(rows))
        print(f"# report section '## {title}' written to {args.report}")
    if str(args.out) != "-" and not args.smoke:
        out = append_result(args.out, dict(
            script="bench_decode", command=" ".join(sys.argv), threads=args.threads, device=str(device),
            beam_size=args.beam_size, exp_dir=str(args.exp_dir), am_exp_dir=str(args.am_exp_dir),
            rows=[{k: v for k, v in r.items() if k != "hyps"} for r in rows]))
        print(f"# written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
