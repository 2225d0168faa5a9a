#!/usr/bin/env python3
"""Decode with the speech LLM (LLMPrefixASRModel): batched greedy search, or ESPnet's BatchBeamSearch with the LLM
scorer (KV cache), optionally joint with the model's CTC head and a length bonus.

Usage:
    # batched greedy (beam 1), one job over a whole test set, features from dump/
    python -m espnet_llm.bin.llm_asr_inference --exp_dir exp/llm_asr_lora_stride80 \
        --data_path_and_name_and_type dump/fbank/test/feats.scp,speech,kaldi_ark \
        --output_dir exp/llm_asr_lora_stride80/decode_greedy/test --batch_size 8 --text_case upper

    # joint CTC / LLM beam search, job 3 of an --nj split, options from a decode YAML
    python -m espnet_llm.bin.llm_asr_inference --config conf/decode_llm_ctc0.3_beam10.yaml \
        --asr_train_config exp/llm_asr_x/config.yaml --asr_model_file exp/llm_asr_x/valid.acc.ave.pth \
        --data_path_and_name_and_type dump/fbank/test/feats.scp,speech,kaldi_ark \
        --key_file exp/llm_asr_x/decode_beam10/test/logdir/keys.3.scp \
        --output_dir exp/llm_asr_x/decode_beam10/test/logdir/output.3 --beam_size 10 --ctc_weight 0.3

    # hotword biasing: the listed words or phrases (one a line) get a bonus per LLM token, taken back when a
    # partial match fails (espnet_llm.decode.hotwords)
    python -m espnet_llm.bin.llm_asr_inference --exp_dir exp/llm_asr_x --beam_size 10 --ctc_weight 0.3 \
        --hotwords hotwords.txt --hotword_bonus 1.5 \
        --data_path_and_name_and_type data/test/wav.scp,speech,sound --output_dir exp/llm_asr_x/decode_hot/test

    # the LLM's forward on OpenVINO with bf16 matrix products (exported once into exp/llm_asr_x/export/)
    python -m espnet_llm.bin.llm_asr_inference --exp_dir exp/llm_asr_x --llm_engine openvino --llm_precision bf16 \
        --data_path_and_name_and_type data/test/wav.scp,speech,sound --output_dir exp/llm_asr_x/decode_ov/test

    # a packed model (python -m espnet_llm.bin.pack) instead of the exp dir, from any directory
    python -m espnet_llm.bin.llm_asr_inference --exp_dir exp/llm_asr_x/packed.zip \
        --data_path_and_name_and_type dump/fbank/test/feats.scp,speech,kaldi_ark --output_dir decode_packed/test

    # from Python (espnet_llm.inference; also importable from here)
    from espnet_llm.inference import Speech2TextLLM
    speech2text = Speech2TextLLM.from_pretrained("egs/an4/asr1/exp/llm_asr_x", beam_size=4)
    text, token_ids, score = speech2text(feats)[0]
    speech2text.transcribe("speech.flac")

Writes Kaldi-style `{output_dir}/1best_recog/{text,token,token_int,score}` (and `2best_recog/...` with --nbest).

Hallucination guards (espnet_llm.decode.guards): the length bound below; `--repeat_ngram N --repeat_max K` ends a
hypothesis (forces EOS) once its last N-gram occurs more than K times, in greedy and beam search alike; and, for a
model with a CTC head, `{output_dir}/1best_recog/ctc_disagreement` holds `<utt> <wer> <flag>` per utterance:
the WER of the LLM's 1-best against the CTC head's greedy output, flag 1 when it exceeds
`--ctc_disagreement_threshold` (a sign of hallucination worth a look, or of a weak CTC head).

Length bound: a transcript has at most `ceil(maxlenratio * T_enc) + maxlen_offset` tokens (EOS included), where
`T_enc` is the number of encoder output frames (the frames the CTC head sees; independent of the projector's
stride). Greedy and beam search use the same bound. An utterance whose prefix plus that bound does not fit in
the LLM's positions is an error that names it.

CTC fallback (`--fallback joint|ctc`): a 1-best that loops (an n-gram occurring more than `--fallback_repeat`
times), that runs to the length bound, or whose WER against the CTC best path exceeds `--fallback_threshold` is
decoded again with joint CTC/LLM beam search at `--fallback_ctc_weight` (joint) or replaced by the CTC best path
(ctc); `{output_dir}/1best_recog/fallback` holds `<utt> <reason>` (`-`: kept, `loop`, `length`, `ctc_disagreement`).

VAD gate (`--vad_gate true`, raw-audio models): a recording in which Silero VAD finds no speech (no region of at
least 250 ms) is not decoded and gets an empty transcript; `{output_dir}/1best_recog/vad` holds `<utt> speech` or
`<utt> no_speech`. The fallback above needs speech to compare with: it cannot stop a speech LLM from writing words
over silence, noise or music; the gate can.

LLM engine (`--llm_engine`, espnet_llm.decode.engine): `hf` runs the Hugging Face model (the reference); `openvino`
and `onnxruntime` run its forward exported with the KV cache as inputs (LoRA merged first), in every search mode.
f32 gives the reference's tokens (logits within float rounding); `--llm_precision bf16|int8` (OpenVINO) trade
accuracy for speed. The export is written once per model file and precision, under a lock, and reused.

Beam search (`espnet_llm.decode.search.SettledBatchBeamSearch`) keeps a hypothesis that the length bound ended (ESPnet
appends its EOS unscored) only when none ended on its own (`--drop_forced_ends false`: ESPnet's behaviour, where such
runaways win whenever CTC's end-of-sentence score is poor).

`--beam_size 1` without CTC is batched greedy search (`espnet_llm.decode.greedy`); with `--ctc_weight > 0` it is
ESPnet's beam search with a beam of 1, since CTC prefix scores need the beam search's scorer machinery.
`--minlenratio` forbids EOS before `int(minlenratio * T_enc)` tokens in greedy search; ESPnet's beam search
instead drops hypotheses that end earlier.
"""

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from espnet2.utils import config_argparse
from espnet2.utils.types import str2bool, str2triple_str, str_or_none

from espnet_llm.bin import UsageHelpFormatter

# the search's text cases (espnet_llm.inference.TEXT_CASES), here so that --help needs no torch
TEXT_CASES = ("keep", "upper", "lower")
# the decoding API, imported when first used (module __getattr__): --help and argument errors need no torch
ENGINES = ("hf", "openvino", "onnxruntime")  # espnet_llm.decode.engine.ENGINES (not imported: --help stays fast)
_API = ("MODEL_FILES", "Result", "Speech2TextLLM", "find_model_files")


def __getattr__(name: str):
    if name in _API:
        from espnet_llm import inference

        return getattr(inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def audio_seconds(speech_lengths, speech, fs: int) -> float:
    """Duration of a batch (torch tensors): raw audio (Batch, Samples) at `fs`, or features (Batch, Frames, Dim)
    at 10 ms."""
    from espnet_llm.tasks.llm_asr import FEATS_FRAME_SHIFT_MS

    if speech.dim() == 2:
        return float(speech_lengths.sum()) / fs
    return float(speech_lengths.sum()) * FEATS_FRAME_SHIFT_MS / 1000.0


def check_raw_audio(triples, spec, key_file=None) -> None:
    """The `sound` inputs must be at the model's rate, mono: ESPnet's loader drops the rate (AudioError if not)."""
    from espnet_llm.audio import check_sample_rates
    from espnet_llm.datadir import read_table

    keys = set(read_table(key_file)) if key_file else None
    for path, _, kind in triples:
        if kind == "sound":
            check_sample_rates(path, spec.fs, keys)


def inference(args: argparse.Namespace, cost: Optional[dict] = None) -> None:
    import torch
    from espnet2.fileio.datadir_writer import DatadirWriter

    from espnet_llm.decode.guards import word_error_rate
    from espnet_llm.decode.hotwords import read_hotwords
    from espnet_llm.decode.timestamps import ctm_lines
    from espnet_llm.longform import has_speech, segment_limit, speech_segments, transcribe_segments
    from espnet_llm.inference import Speech2TextLLM, speech_input
    from espnet_llm.tasks.llm_asr import LLMASRTask

    device = "cuda" if args.ngpu > 0 else "cpu"
    torch.manual_seed(args.seed)
    speech2text = Speech2TextLLM.from_pretrained(
        exp_dir=args.exp_dir,
        asr_train_config=args.asr_train_config,
        asr_model_file=args.asr_model_file,
        device=device,
        beam_size=args.beam_size,
        ctc_weight=args.ctc_weight,
        penalty=args.penalty,
        maxlenratio=args.maxlenratio,
        maxlen_offset=args.maxlen_offset,
        minlenratio=args.minlenratio,
        normalize_length=args.normalize_length,
        nbest=args.nbest,
        text_case=args.text_case,
        repeat_ngram=args.repeat_ngram,
        repeat_max=args.repeat_max,
        drop_forced_ends=args.drop_forced_ends,
        speculative=args.speculative,
        draft_window=args.draft_window,
        hotwords=read_hotwords(args.hotwords) if args.hotwords else None,
        hotword_bonus=args.hotword_bonus,
        fallback=args.fallback,
        fallback_threshold=args.fallback_threshold,
        fallback_ctc_weight=args.fallback_ctc_weight,
        fallback_repeat=args.fallback_repeat,
        llm_engine=args.llm_engine,
        llm_precision=args.llm_precision,
        llm_engine_dir=engine_dir(args),
    )
    train_args = speech2text.train_args
    check_raw_audio(args.data_path_and_name_and_type, speech_input(train_args), args.key_file)
    batch_size = args.batch_size if speech2text.use_greedy else 1
    # --long_form auto: recordings longer than a segment may be (--merge_segment_seconds, else --max_segment_seconds)
    # are cut by the VAD; true: every recording
    long_form = str(args.long_form).lower()
    if long_form not in ("auto", "true", "false"):
        raise ValueError(f"--long_form must be auto, true or false, got {args.long_form!r}")
    if long_form == "true" and speech_input(train_args).kind != "raw":
        raise ValueError("--long_form needs a model that reads raw audio (wav.scp as sound): the VAD cuts samples")
    if args.vad_gate and speech_input(train_args).kind != "raw":
        raise ValueError("--vad_gate needs a model that reads raw audio (wav.scp as sound): the VAD reads samples")
    long_samples = None
    if long_form != "false" and speech_input(train_args).kind == "raw":
        long_samples = 0 if long_form == "true" else int(
            segment_limit(args.max_segment_seconds, args.merge_segment_seconds) * speech_input(train_args).fs)
    loader = LLMASRTask.build_streaming_iterator(
        args.data_path_and_name_and_type,
        dtype="float32",
        batch_size=batch_size,
        key_file=args.key_file,
        num_workers=args.num_workers,
        preprocess_fn=LLMASRTask.build_preprocess_fn(train_args, False),
        collate_fn=LLMASRTask.build_collate_fn(train_args, False),
        allow_variable_data_keys=args.allow_variable_data_keys,
        inference=True,
    )
    fs = (train_args.frontend_conf or {}).get("fs", 16000)
    mode = "greedy" if speech2text.use_greedy else f"beam {args.beam_size}, ctc_weight {args.ctc_weight}"
    logging.info(f"decoding ({mode}, batch {batch_size}) into {args.output_dir}")

    if cost is not None:
        cost["loaded"] = time.time()
    start, seconds, done, next_log = time.perf_counter(), 0.0, 0, args.log_interval
    ctm: list = []  # --word_times: NIST CTM lines, written after the loop
    with DatadirWriter(args.output_dir) as writer:
        for keys, batch in loader:
            lengths = batch.get("speech_lengths")
            if lengths is None:
                lengths = torch.full((len(keys),), batch["speech"].shape[1], dtype=torch.long)
            if args.vad_gate:  # recordings without speech: an empty transcript, not decoded
                silent = [i for i in range(len(keys))
                          if not has_speech(batch["speech"][i, : int(lengths[i])].numpy(), fs)]
                for i, key in enumerate(keys):
                    writer["1best_recog"]["vad"][key] = "no_speech" if i in silent else "speech"
                    if i in silent:
                        writer["1best_recog"]["text"][key] = ""
                        logging.info(f"{key}: no speech found by the VAD: empty transcript")
                if silent:
                    seconds += audio_seconds(lengths[silent], batch["speech"], fs)
                    done += len(silent)
                    keys, batch, lengths = keep(keys, batch, lengths, silent)
                    if not keys:
                        continue
            long = [] if long_samples is None else [i for i in range(len(keys)) if int(lengths[i]) > long_samples]
            if long:
                for i in long:  # a long recording: in VAD segments, batched; the batch's others decode as they are
                    key = keys[i]
                    wav = batch["speech"][i, : int(lengths[i])].numpy()
                    result = transcribe_segments(lambda xs: [t.text for t in speech2text._best_batch(xs)], wav, fs,
                                                 speech_segments(wav, fs, args.max_segment_seconds,
                                                                 merge_seconds=args.merge_segment_seconds,
                                                                 split_pause_seconds=args.split_pause_seconds),
                                                 args.batch_size if speech2text.use_greedy else 1)
                    writer["1best_recog"]["text"][key] = result.text
                    for n, seg in enumerate(result.segments):
                        seg_id = f"{key}-{int(seg.start * 100):07d}-{int(seg.end * 100):07d}"
                        writer["1best_recog"]["segments"][seg_id] = f"{key} {seg.start:.2f} {seg.end:.2f}"
                        writer["1best_recog"]["segment_text"][seg_id] = seg.text
                    logging.info(f"{key}: {len(result.segments)} segments of {len(wav) / fs:.1f} s")
                seconds += audio_seconds(lengths[long], batch["speech"], fs)
                done += len(long)
                keys, batch, lengths = keep(keys, batch, lengths, long)
                if not keys:
                    continue
            try:
                nbests, ctc_texts = speech2text.decode_batch_with_ctc(batch["speech"], lengths, keys)
            except RuntimeError as e:
                raise RuntimeError(f"decoding utterance(s) {', '.join(keys)} failed: {e}") from e
            for key, nbest in zip(keys, nbests):
                for n, (text, ids, score) in enumerate(nbest, 1):
                    out = writer[f"{n}best_recog"]
                    out["text"][key] = text
                    out["token"][key] = " ".join(speech2text.tokenizer.convert_ids_to_tokens(ids))
                    out["token_int"][key] = " ".join(map(str, ids))
                    out["score"][key] = str(score)
            if args.fallback != "none":
                for key, reason in zip(keys, speech2text.fallbacks):
                    writer["1best_recog"]["fallback"][key] = reason or "-"
                    if reason:
                        logging.warning(f"{key}: fell back to {args.fallback} ({reason})")
            if args.word_times:
                for i, (key, nbest) in enumerate(zip(keys, nbests)):
                    speech = batch["speech"][i, : int(lengths[i])]
                    try:
                        ctm += ctm_lines(key, speech2text.word_times(speech, nbest[0][0]) if nbest[0][0] else [])
                    except ValueError as e:  # e.g. more tokens than encoder frames: no times for this one
                        logging.warning(f"{key}: no word times: {e}")
            for key, nbest, ctc_text in zip(keys, nbests, ctc_texts or []):
                wer = word_error_rate(ctc_text, nbest[0][0])
                flag = int(wer > args.ctc_disagreement_threshold)
                writer["1best_recog"]["ctc_disagreement"][key] = f"{wer:.4f} {flag}"
                if flag:
                    logging.warning(f"{key}: LLM and CTC disagree (WER {wer:.2f}): {nbest[0][0]!r} vs {ctc_text!r}")
            seconds += audio_seconds(lengths, batch["speech"], fs)
            done += len(keys)
            if done >= next_log:
                elapsed = time.perf_counter() - start
                logging.info(f"{done} utterances, {elapsed:.1f} s, RTF {elapsed / max(seconds, 1e-9):.3f}")
                next_log += args.log_interval
    if args.word_times:
        path = Path(args.output_dir) / "1best_recog" / "ctm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in ctm), encoding="utf-8")
    elapsed = time.perf_counter() - start
    if args.speculative:
        d = speech2text.draft_stats
        logging.info(f"speculative greedy: {d.accepted} of {d.proposed} draft tokens accepted "
                     f"({d.accepted / max(d.proposed, 1):.1%}), {d.forwards} LLM forwards for {d.tokens} tokens")
    logging.info(f"done: {done} utterances, {seconds:.1f} s of audio in {elapsed:.1f} s, RTF {elapsed / max(seconds, 1e-9):.3f}")


def keep(keys, batch, lengths, drop):
    """The batch without the utterances at the indices `drop` (handled already): (keys, batch, lengths)."""
    rest = [i for i in range(len(keys)) if i not in drop]
    if not rest:
        return [], batch, lengths
    lengths = lengths[rest]
    return [keys[i] for i in rest], {"speech": batch["speech"][rest, : int(lengths.max())]}, lengths


def positive_seconds(value: str) -> Optional[float]:
    """--split_pause_seconds: a number of seconds > 0 (none: off)."""
    if str_or_none(value) is None:
        return None
    from espnet_llm.longform import check_split_pause

    try:
        return check_split_pause(float(value))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a number of seconds > 0: {value!r}") from e


def get_parser() -> argparse.ArgumentParser:
    parser = config_argparse.ArgumentParser(
        description=__doc__,
        formatter_class=UsageHelpFormatter,
    )
    parser.add_argument("--log_level", default="INFO", choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"))
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--ngpu", type=int, default=0, help="0: CPU, 1: one GPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--log_interval", type=int, default=50, help="log progress every N utterances")

    group = parser.add_argument_group("Input data")
    group.add_argument("--data_path_and_name_and_type", type=str2triple_str, required=True, action="append")
    group.add_argument("--key_file", type=str_or_none, help="decode only these utterances (one --nj split)")
    group.add_argument("--allow_variable_data_keys", type=str2bool, default=False)

    group = parser.add_argument_group("The model")
    group.add_argument("--exp_dir", type=str_or_none,
                       help="experiment dir with config.yaml and a model file, or a packed model archive")
    group.add_argument("--asr_train_config", type=str_or_none, help="config.yaml (instead of --exp_dir)")
    group.add_argument("--asr_model_file", type=str_or_none,
                       help="model .pth (instead of --exp_dir; with --exp_dir: another model file of it)")

    group = parser.add_argument_group("Search")
    group.add_argument("--batch_size", type=int, default=1, help="utterances per batch (greedy search only)")
    group.add_argument("--beam_size", type=int, default=1, help="1: greedy (batched unless ctc_weight > 0)")
    group.add_argument("--ctc_weight", type=float, default=0.0, help="CTC prefix score weight (needs a CTC head)")
    group.add_argument("--penalty", type=float, default=0.0, help="length bonus per token")
    group.add_argument("--maxlenratio", type=float, default=0.5, help="max tokens per encoder frame")
    group.add_argument("--maxlen_offset", type=int, default=10, help="tokens added to the max length")
    group.add_argument("--minlenratio", type=float, default=0.0, help="min tokens per encoder frame")
    group.add_argument("--normalize_length", type=str2bool, default=False, help="rank hypotheses by score / length")
    group.add_argument("--nbest", type=int, default=1)
    group.add_argument("--drop_forced_ends", type=str2bool, default=True,
                       help="beam search: drop hypotheses ended by the length bound (EOS unscored) when any ended "
                            "on its own (espnet_llm.decode.search; false: ESPnet's behaviour)")
    group.add_argument("--text_case", default="keep", choices=TEXT_CASES, help="upper: score against AN4")
    group.add_argument("--speculative", type=str2bool, default=False,
                       help="greedy search verifying the CTC head's best path as a draft (same output, fewer LLM "
                            "forwards; needs beam_size 1, ctc_weight 0 and a CTC head)")
    group.add_argument("--draft_window", type=int, default=16, help="draft tokens verified per LLM forward")
    group.add_argument("--word_times", type=str2bool, default=False,
                       help="word start/end times of the 1-best by CTC segmentation on the CTC head -> 1best_recog/ctm")
    group.add_argument("--long_form", default="auto", choices=("auto", "true", "false"),
                       help="recordings longer than a segment may be (--merge_segment_seconds if given, else "
                            "--max_segment_seconds) are cut at pauses (Silero VAD) and decoded in segments; "
                            "1best_recog/segments and segment_text give each one's times and text. auto: for a model "
                            "that reads raw audio; true: every recording, and an error for a model that does not")
    group.add_argument("--max_segment_seconds", type=float, default=30.0, help="--long_form: the longest segment")
    group.add_argument("--merge_segment_seconds", type=float, default=None,
                       help="--long_form: speech regions are joined into one segment only up to this length (default "
                            "--max_segment_seconds); a model trained on short utterances wants about their length")
    group.add_argument("--split_pause_seconds", type=positive_seconds, default=None,
                       help="--long_form: speech regions are never joined across a pause at least this long (> 0; "
                            "the silence between the VAD's regions, before its padding), so that no segment spans a "
                            "sentence-level pause; the segment limits above still apply (default: off)")
    group.add_argument("--vad_gate", type=str2bool, default=False,
                       help="a recording in which the VAD (Silero) finds no speech gets an empty transcript and is not "
                            "decoded; 1best_recog/vad says speech or no_speech per recording")
    group.add_argument("--hotwords", type=str_or_none, default=None,
                       help="file of words or phrases (one a line) the beam search is biased towards (greedy "
                            "becomes a beam search)")
    group.add_argument("--hotword_bonus", type=float, default=1.0, help="score bonus per LLM token of a listed phrase")

    group = parser.add_argument_group("LLM engine (espnet_llm.decode.engine)")
    group.add_argument("--llm_engine", default="hf", choices=ENGINES,
                       help="what runs the LLM's forward: the Hugging Face model, or its graph exported for OpenVINO or "
                            "ONNX Runtime (LoRA merged; exported once per model file)")
    group.add_argument("--llm_precision", default="f32", choices=("f32", "bf16", "int8"),
                       help="openvino: f32, bf16 or int8 weights; onnxruntime and hf: f32")
    group.add_argument("--llm_engine_dir", type=str_or_none, default=None,
                       help="the exported graph (default: export/<engine>_<precision>_<model> beside the model file)")

    group = parser.add_argument_group("Hallucination guards")
    group.add_argument("--repeat_ngram", type=int, default=0, help="N of the repetition stop (0: off)")
    group.add_argument("--repeat_max", type=int, default=2, help="end a hypothesis whose last N-gram occurs > this")
    group.add_argument("--fallback", default="none", choices=("none", "joint", "ctc"),
                       help="when the 1-best loops, runs to the length bound or disagrees with the CTC best path: "
                            "decode it again with joint CTC (joint) or take the CTC best path (ctc); "
                            "1best_recog/fallback names the reason per utterance")
    group.add_argument("--fallback_threshold", type=float, default=0.5,
                       help="CTC disagreement (WER of the 1-best against the CTC best path) above which it falls back")
    group.add_argument("--fallback_ctc_weight", type=float, default=0.5, help="--fallback joint: its CTC weight")
    group.add_argument("--fallback_repeat", type=int, default=4,
                       help="a 1-best in which an n-gram (n <= 4) occurs more than this often falls back (0: off)")
    group.add_argument("--ctc_disagreement_threshold", type=float, default=0.5,
                       help="flag utterances whose LLM 1-best has a WER above this against the CTC greedy output")
    return parser


def engine_dir(args) -> Optional[str]:
    """Where the LLM's exported graph lives: --llm_engine_dir, else `export/<engine>_<precision>_<model>` beside the
    model file (the exp dir); None (a temporary dir) for the hf engine and for a packed archive."""
    if args.llm_engine == "hf" or args.llm_engine_dir:
        return args.llm_engine_dir
    from espnet_llm.decode.engine import default_engine_dir
    from espnet_llm.packing import find_model_files

    if args.asr_model_file:
        return str(default_engine_dir(args.asr_model_file, args.llm_engine, args.llm_precision))
    if args.exp_dir and Path(args.exp_dir).is_dir():
        return str(default_engine_dir(find_model_files(args.exp_dir)[1], args.llm_engine, args.llm_precision))
    return None


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    if args.exp_dir is None and args.asr_model_file is None:
        sys.exit("give --exp_dir, or --asr_train_config and --asr_model_file")
    from espnet_llm.audio import AudioError
    from espnet_llm.exp_dir import DirBusy, clear_done, exclusive, mark_done, weights_only_torch_load
    from espnet_llm.runinfo import record_decode

    try:
        with exclusive(args.output_dir, "decoding"), weights_only_torch_load():
            clear_done(args.output_dir)
            with record_decode(args.output_dir) as cost:
                inference(args, cost)
            mark_done(args.output_dir)
    except (ValueError, FileNotFoundError, DirBusy, AudioError) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
