#!/usr/bin/env python3
"""Decode with the conventional acoustic model: ESPnet's `Speech2Text` and beam search (CTC/attention, LM).

Usage:
    python -m espnet_llm.bin.asr_inference --ngpu 0 --config conf/decode_asr.yaml \
        --asr_train_config exp/asr_x/config.yaml --asr_model_file exp/asr_x/valid.acc.ave.pth \
        --data_path_and_name_and_type dump/fbank/test/feats.scp,speech,kaldi_ark \
        --key_file exp/asr_x/decode_asr/test/logdir/keys.1.scp --output_dir exp/asr_x/decode_asr/test/logdir/output.1

    # from Python: ESPnet's Speech2Text of an exp dir or a packed archive, with transcribe() on audio files
    from espnet_llm.bin.asr_inference import Speech2TextAM   # = espnet_llm.inference.Speech2TextAM
    am = Speech2TextAM.from_pretrained("egs/an4/asr1/exp/asr_conformer/packed.zip", beam_size=10, ctc_weight=0.3)
    am.transcribe("speech.flac")

This is `espnet2.bin.asr_inference.main` unchanged (the beam size, ctc_weight, lm_weight and penalty come
from the decode YAML); the recipe splits the test set over `--nj` jobs and merges `1best_recog/text`.
"""
from espnet_llm.bin import help_or_args


def __getattr__(name: str):
    if name == "Speech2TextAM":  # imported when first used: --help needs no torch
        from espnet_llm.inference import Speech2TextAM

        return Speech2TextAM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(cmd=None) -> None:
    cmd = help_or_args(__doc__, cmd, "those of ESPnet's espnet2.bin.asr_inference", print_config=False)
    from espnet2.bin.asr_inference import main as espnet_main

    espnet_main(cmd)


if __name__ == "__main__":
    main()
