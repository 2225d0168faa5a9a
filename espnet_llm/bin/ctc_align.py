#!/usr/bin/env python3
"""Word times of the reference transcripts by an ESPnet AM's CTC: NIST CTM of a data dir, by ESPnet's CTC segmentation.

Usage:
    # the Whisper-encoder AM of the AN4 recipe aligns AN4 test's references (the word-time study's reference)
    cd egs/an4/asr1 && python -m espnet_llm.bin.ctc_align --asr_exp_dir exp/asr_whisper_ctc_att_nosp \
        --data_dir data/test --out exp/asr_whisper_ctc_att_nosp/align_valid.acc.ave/test/ctm
    python -m espnet_llm.bin.ctc_align --asr_train_config exp/x/config.yaml --asr_model_file exp/x/10epoch.pth \
        --data_dir data/dev --out dev.ctm

The aligner is ESPnet's `espnet2.bin.asr_align.CTCSegmentation` (the `ctc-segmentation` package on the AM's CTC
log-posteriors, Kürzinger et al. 2020): every word of an utterance's reference is one of its "utterances", tokenised
by the AM's own tokenizer, so each word gets a start, an end and a confidence. The AM reads raw audio (an AM with a
frontend, or the project's `hf_whisper` encoder) or, with `frontend: null`, the recipe's 80-dim fbank (stage 3's
features, computed here from wav.scp by `espnet_llm.audio.fbank`, normalised by the model's own `global_mvn`);
the times are in seconds of audio either way (the audio's length over the CTC frames). The project's encoders are
registered in ESPnet's ASRTask first, and the model file is loaded as weights only.

Output: `<utt> 1 <start> <duration> <WORD> <confidence>` lines in the data dir's order. An utterance whose words need
more CTC frames than its audio has is left out with a warning; every other problem stops with the utterance named.
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from espnet_llm.bin import UsageHelpFormatter


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=UsageHelpFormatter)
    parser.add_argument("--asr_exp_dir", type=Path, help="an ESPnet ASR exp dir (config.yaml, --model)")
    parser.add_argument("--model", default="valid.acc.ave.pth", help="model file of --asr_exp_dir")
    parser.add_argument("--asr_train_config", type=Path, help="config.yaml (instead of --asr_exp_dir)")
    parser.add_argument("--asr_model_file", type=Path, help="model file (instead of --asr_exp_dir)")
    parser.add_argument("--data_dir", required=True, type=Path, help="Kaldi data dir with wav.scp and text")
    parser.add_argument("--out", required=True, type=Path, help="the CTM to write")
    parser.add_argument("--threads", type=int, default=2)
    return parser


def raw_audio_encoder(model) -> bool:
    """Whether an ESPnet ASR model without a frontend reads raw audio itself (the project's Whisper encoder)."""
    from espnet_llm.asr.encoder.whisper_encoder import WhisperEncoder

    return isinstance(getattr(model, "encoder", None), WhisperEncoder)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    config = args.asr_train_config or (args.asr_exp_dir / "config.yaml" if args.asr_exp_dir else None)
    model = args.asr_model_file or (args.asr_exp_dir / args.model if args.asr_exp_dir else None)
    if config is None or model is None:
        sys.exit("ctc_align: give --asr_exp_dir, or --asr_train_config and --asr_model_file")
    for path in (config, model, args.data_dir / "wav.scp", args.data_dir / "text"):
        if not path.is_file():
            sys.exit(f"ctc_align: {path} does not exist")
    import numpy as np
    import torch
    from espnet2.bin.asr_align import CTCSegmentation

    import espnet_llm.tasks.asr  # noqa: F401  (the project's encoders among ASRTask's choices)
    from espnet_llm.audio import AudioError, fbank, load_audio
    from espnet_llm.datadir import read_table
    from espnet_llm.exp_dir import weights_only_torch_load

    torch.set_num_threads(args.threads)
    with weights_only_torch_load():
        aligner = CTCSegmentation(str(config), str(model), fs=16000, kaldi_style_text=False, time_stamps="auto")
    features = getattr(aligner.asr_model, "frontend", None) is None and not raw_audio_encoder(aligner.asr_model)
    wav_scp, text = read_table(args.data_dir / "wav.scp"), read_table(args.data_dir / "text")
    lines, skipped = [], 0
    for utt, words in text.items():
        words = words.split()
        if not words:
            continue
        if utt not in wav_scp:
            sys.exit(f"ctc_align: utterance {utt} of {args.data_dir / 'text'} is not in wav.scp")
        try:
            wav = load_audio(wav_scp[utt], 16000, utt_id=utt)
        except (AudioError, OSError) as e:
            sys.exit(f"ctc_align: {e}")
        try:
            wav = np.asarray(wav, dtype=np.float32)
            lpz = aligner.get_lpz(np.asarray(fbank(wav), dtype=np.float32) if features else wav)
            # time per CTC frame: the audio's samples over the frames (what "auto" time stamps do with raw audio)
            task = aligner.prepare_segmentation_task(words, lpz, utt, len(wav))
            task.set(**aligner.get_segments(task))
        except (AssertionError, ValueError, IndexError) as e:  # more tokens than frames, in the package's words
            logging.warning(f"{utt}: not aligned ({type(e).__name__}: {e})")
            skipped += 1
            continue
        for word, (start, end, score) in zip(words, task.segments):
            lines.append(f"{utt} 1 {max(0.0, start):.3f} {max(0.0, end - max(0.0, start)):.3f} {word} "
                         f"{min(1.0, float(np.exp(score))):.3f}\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(args.out)
    logging.info(f"{len(text) - skipped} utterances aligned ({skipped} left out) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
