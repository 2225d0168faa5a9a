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

This is `espnet2.bin.asr_inference.main` (the beam size, ctc_weight, lm_weight and penalty come from the decode
YAML) inside the project's guards (espnet_llm.exp_dir): one decoder per output dir, model files loaded as weights
only, `<output_dir>/.done` written after the last output, the decoding's wall time (without loading the model) and
peak memory in `<output_dir>/meta.json`. The recipe splits the test set over `--nj` jobs and
merges the `1best_recog/` files of the splits that are done.
"""
import sys
import time

from espnet_llm.bin import help_or_args


def __getattr__(name: str):
    if name == "Speech2TextAM":  # imported when first used: --help needs no torch
        from espnet_llm.inference import Speech2TextAM

        return Speech2TextAM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(cmd=None) -> None:
    cmd = help_or_args(__doc__, cmd, "those of ESPnet's espnet2.bin.asr_inference", print_config=False)
    import espnet_llm.tasks.asr  # noqa: F401  the project's encoders among ESPnet's choices
    from espnet2.bin.asr_inference import main as espnet_main

    import espnet2.bin.asr_inference as espnet_asr_inference

    from espnet_llm.exp_dir import DirBusy, clear_done, exclusive, mark_done, weights_only_torch_load
    from espnet_llm.runinfo import record_decode

    output_dir = next((a.split("=", 1)[1] if "=" in a else cmd[i + 1] for i, a in enumerate(cmd)
                       if a.split("=", 1)[0] == "--output_dir" and ("=" in a or i + 1 < len(cmd))), None)
    if output_dir is None:
        espnet_main(cmd)  # ESPnet's parser names the missing option
        return
    try:
        with exclusive(output_dir, "decoding"), weights_only_torch_load():
            clear_done(output_dir)
            with record_decode(output_dir) as cost:
                build = espnet_asr_inference.Speech2Text.from_pretrained

                def timed_build(*args, **kwargs):  # the decoding loop starts when the model is built
                    speech2text = build(*args, **kwargs)
                    cost["loaded"] = time.time()
                    return speech2text

                espnet_asr_inference.Speech2Text.from_pretrained = staticmethod(timed_build)
                try:
                    espnet_main(cmd)
                finally:
                    espnet_asr_inference.Speech2Text.from_pretrained = staticmethod(build)
            mark_done(output_dir)
    except DirBusy as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
