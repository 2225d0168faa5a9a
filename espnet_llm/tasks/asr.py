"""ESPnet's own ASR task (``espnet2.tasks.asr.ASRTask``, not a fork) with the project's encoders among its choices.

Importing this module adds to ESPnet's ``encoder_choices``:

    hf_whisper    espnet_llm.asr.encoder.whisper_encoder.WhisperEncoder: the pretrained Whisper encoder
                  (``model_dir`` of ``espnet_llm.bin.whisper_prepare``) on raw audio, the encoder the speech LLM
                  uses, so that the conventional CTC/attention AM and the speech LLM can stand on the same encoder.
                  (ESPnet's own ``whisper`` choice needs the openai-whisper package and its download.)

so an ESPnet ASR YAML names it like any encoder::

    frontend: null          # the encoder computes Whisper's log-mel itself from the raw samples
    input_size: 1
    normalize: null
    specaug: null
    encoder: hf_whisper
    encoder_conf:
        model_dir: exp/whisper/tiny.en
        freeze: false

``ASRTask`` here is ESPnet's task with one more training option, ``encoder_lr_scale`` (espnet_llm.tasks.optim):
the pretrained Whisper encoder fine-tuned at a fraction of the learning rate of the decoder and CTC trained from
scratch. Models, checkpoints and configs are ESPnet's own (ESPnet's ``Speech2Text`` decodes them).

The project's entry points that build ESPnet ASR models (``espnet_llm.bin.asr_train``, ``asr_inference``,
``asr_fusion_inference``, ``espnet_llm.inference.Speech2TextAM``) import it first.
"""
import argparse
from typing import List

import torch
from espnet2.tasks import asr as _espnet_asr

from espnet_llm.asr.encoder.whisper_encoder import WhisperEncoder
from espnet_llm.tasks.optim import add_encoder_lr_scale, encoder_scaled_optimizers

PROJECT_ENCODERS = {"hf_whisper": WhisperEncoder}

for _name, _cls in PROJECT_ENCODERS.items():
    _espnet_asr.encoder_choices.classes.setdefault(_name, _cls)



class ASRTask(_espnet_asr.ASRTask):
    """ESPnet's ASRTask (its choices, model, trainer) plus ``--encoder_lr_scale``."""

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_task_arguments(parser)
        add_encoder_lr_scale(parser.add_argument_group(description="The project's options"))

    @classmethod
    def build_optimizers(cls, args: argparse.Namespace, model: torch.nn.Module) -> List[torch.optim.Optimizer]:
        return encoder_scaled_optimizers(args, model) or super().build_optimizers(args, model)


__all__ = ["ASRTask", "PROJECT_ENCODERS"]
