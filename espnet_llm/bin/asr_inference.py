#!/usr/bin/env python3
"""Decode with the conventional acoustic model: ESPnet's `Speech2Text` and beam search (CTC/attention, LM).

Usage:
    python -m espnet_llm.bin.asr_inference --ngpu 0 --config conf/decode_asr.yaml \
        --asr_train_config exp/asr_x/config.yaml --asr_model_file exp/asr_x/valid.acc.ave.pth \
        --data_path_and_name_and_type dump/fbank/test/feats.scp,speech,kaldi_ark \
        --key_file exp/asr_x/decode_asr/test/logdir/keys.1.scp --output_dir exp/asr_x/decode_asr/test/logdir/output.1

This is `espnet2.bin.asr_inference.main` unchanged (the beam size, ctc_weight, lm_weight and penalty come
from the decode YAML); the recipe splits the test set over `--nj` jobs and merges `1best_recog/text`.
"""
from espnet2.bin.asr_inference import main as espnet_main


def main(cmd=None) -> None:
    espnet_main(cmd)


if __name__ == "__main__":
    main()
