#!/usr/bin/env python3
"""Train the conventional acoustic model (conformer CTC/attention) with ESPnet's own ASR task and trainer.

Usage:
    # statistics pass (shapes for batching + global CMVN feats_stats.npz):
    python -m espnet_llm.bin.asr_train --collect_stats true --config conf/tuning/train_asr_conformer.yaml \
        --token_type bpe --bpemodel data/token_list/bpe_unigram30/bpe.model \
        --token_list data/token_list/bpe_unigram30/tokens.txt --input_size 80 --normalize none \
        --train_data_path_and_name_and_type dump/fbank/train_sp/feats.scp,speech,kaldi_ark \
        --train_data_path_and_name_and_type data/train_sp/text,text,text \
        --valid_data_path_and_name_and_type dump/fbank/dev/feats.scp,speech,kaldi_ark \
        --valid_data_path_and_name_and_type data/dev/text,text,text \
        --train_shape_file data/train_sp/wav.scp --valid_shape_file data/dev/wav.scp \
        --output_dir exp/asr_stats_fbank --ngpu 0
    # training (resumes from exp/asr_x/checkpoint.pth with --resume true):
    python -m espnet_llm.bin.asr_train --config conf/tuning/train_asr_conformer.yaml ... \
        --normalize_conf stats_file=exp/asr_stats_fbank/train/feats_stats.npz --output_dir exp/asr_x --resume true

This is `espnet2.tasks.asr.ASRTask.main` unchanged: options, checkpoints, resume, model averaging and
DDP are ESPnet's; it also adds the wall time and peak memory of the run to `<output_dir>/meta.json`. The recipe (egs/TEMPLATE/asr1/llm_asr.sh, stages 5-6) writes these commands for you.
"""
import sys

from espnet_llm.bin import help_or_args


def main(cmd=None) -> None:
    cmd = help_or_args(__doc__, cmd, "those of ESPnet's ASRTask (espnet2.bin.asr_train)")
    from espnet_llm.tasks.asr import ASRTask  # ESPnet's, with the project's encoders (hf_whisper)

    from espnet_llm.exp_dir import DirBusy, guarded_training
    from espnet_llm.runinfo import record_run

    args = ASRTask.get_parser().parse_args(cmd)
    if not args.print_config:
        from espnet_llm.config_check import ConfigError, check_nested_confs

        try:
            check_nested_confs(ASRTask, args)
        except ConfigError as e:
            sys.exit(f"error: {e}")
    if args.collect_stats or args.print_config or args.output_dir is None:
        ASRTask.main(args=args)
        return
    try:
        with guarded_training(args.output_dir, "AM training"), record_run(
            args.output_dir, "train", encoder=args.encoder, decoder=args.decoder,
            ctc_weight=(args.model_conf or {}).get("ctc_weight"), max_epoch=args.max_epoch,
        ):
            ASRTask.main(args=args)
    except DirBusy as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
