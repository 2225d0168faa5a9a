#!/usr/bin/env python3
"""Train the speech LLM (encoder -> projector -> causal LM) with ESPnet's trainer.

Usage:
    # statistics pass (shape files for batching; speech shapes and LLM-token text lengths):
    python -m espnet_llm.bin.llm_asr_train --collect_stats true --config conf/tuning/train_llm_asr_conformer_lora_stride80.yaml \
        --input_size 80 --normalize none \
        --train_data_path_and_name_and_type dump/fbank/train/feats.scp,speech,kaldi_ark \
        --train_data_path_and_name_and_type data/train/text,text,text \
        --valid_data_path_and_name_and_type dump/fbank/dev/feats.scp,speech,kaldi_ark \
        --valid_data_path_and_name_and_type data/dev/text,text,text \
        --train_shape_file data/train/wav.scp --valid_shape_file data/dev/wav.scp \
        --output_dir exp/llm_asr_stats --ngpu 0
    # training, starting from the baseline acoustic model's encoder:
    python -m espnet_llm.bin.llm_asr_train --config conf/tuning/train_llm_asr_conformer_lora_stride80.yaml --input_size 80 \
        --normalize_conf stats_file=exp/asr_stats_fbank/train/feats_stats.npz \
        --llm_conf name_or_path=exp/llm/smollm2-135m \
        --init_param exp/asr_conformer/valid.acc.ave.pth:encoder:encoder \
        --train_data_path_and_name_and_type dump/fbank/train/feats.scp,speech,kaldi_ark \
        --train_data_path_and_name_and_type data/train/text,text,text \
        --valid_data_path_and_name_and_type dump/fbank/dev/feats.scp,speech,kaldi_ark \
        --valid_data_path_and_name_and_type data/dev/text,text,text \
        --train_shape_file exp/llm_asr_stats/train/speech_shape --valid_shape_file exp/llm_asr_stats/valid/speech_shape \
        --output_dir exp/llm_asr_lora_stride80 --ngpu 0 --resume true

This is `espnet_llm.tasks.llm_asr.LLMASRTask.main`: options, checkpoints, resume, model averaging and DDP are
ESPnet's; the run's wall time and peak memory go to `<output_dir>/meta.json`. Checkpoints hold everything but the frozen LLM weights, which are reloaded from llm_conf.name_or_path.
"""
import sys

from espnet_llm.bin import help_or_args


def main(cmd=None) -> None:
    cmd = help_or_args(__doc__, cmd, "ESPnet's trainer options and espnet_llm.tasks.llm_asr.LLMASRTask's (its "
                       "docstring lists the YAML keys)")
    from espnet_llm.exp_dir import DirBusy, guarded_training
    from espnet_llm.runinfo import record_run
    from espnet_llm.tasks.llm_asr import LLMASRTask

    args = LLMASRTask.get_parser().parse_args(cmd)
    if not args.print_config:
        from espnet_llm.config_check import ConfigError, check_nested_confs

        try:
            check_nested_confs(LLMASRTask, args, skip={"model_conf": ("prompt",)})  # the task reads prompt
        except ConfigError as e:
            sys.exit(f"error: {e}")
    if args.collect_stats or args.print_config or args.output_dir is None:
        LLMASRTask.main(args=args)
        return
    if args.encoder == "whisper" or args.frontend is not None:  # raw audio: ESPnet's sound loader drops the rate
        from espnet_llm.audio import AudioError, check_sample_rates
        from espnet_llm.inference import speech_input

        try:
            for path, _, kind in (args.train_data_path_and_name_and_type or []) + (
                    args.valid_data_path_and_name_and_type or []):
                if kind == "sound":
                    check_sample_rates(path, speech_input(args).fs)
        except AudioError as e:
            sys.exit(f"error: {e}")
    try:
        with guarded_training(args.output_dir, "speech LLM training"), record_run(
            args.output_dir, "train", encoder=args.encoder, projector=args.projector,
            llm_tuning=(args.llm_conf or {}).get("tuning"), stride_ms=(args.projector_conf or {}).get("stride_ms"),
            max_epoch=args.max_epoch,
        ):
            LLMASRTask.main(args=args)
    except DirBusy as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
