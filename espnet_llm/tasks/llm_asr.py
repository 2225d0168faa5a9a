"""LLMASRTask: ESPnet task for the speech LLM (``LLMPrefixASRModel``), modeled on ``espnet2.tasks.asr.ASRTask``.

YAML keys (besides ESPnet's trainer/optimizer keys):
    frontend, frontend_conf        ESPnet frontends (``default``) or null with ``input_size`` (features from dump/)
    specaug, specaug_conf          ``specaug`` or null
    normalize, normalize_conf      ``global_mvn`` (stats_file=...), ``utterance_mvn``, or null
    encoder, encoder_conf          every encoder of ESPnet's ASR task, plus ``whisper`` (espnet_llm's WhisperEncoder)
    encoder_frame_shift_ms         encoder output frame shift; default: the encoder's ``frame_shift_ms`` attribute,
                                   else measured (features at 10 ms through the encoder, frontend null only)
    projector, projector_conf      ``stack_linear`` | ``stack_mlp`` | ``conv``; conf: ``stack: k`` or ``stride_ms: 80``
    llm_conf                       name_or_path (local dir), tuning (frozen|lora|full), lora (r, alpha, dropout,
                                   target_modules), dtype, trust_remote_code
    model, model_conf              ``llm_prefix``; conf: prompt (text), text_mask_prob, ctc_weight, freeze_encoder
    ctc_conf                       ESPnet CTC options (dropout_rate, ctc_type, ...), used when ctc_weight > 0
    encoder_lr_scale               the encoder's learning rate relative to optim_conf.lr (fine-tuning a pretrained
                                   encoder beside a new projector; default 1)
    ctc_vocab                      file of LLM token ids (one per line, ``espnet_llm.bin.llm_ctc_vocab``): the CTC
                                   head predicts only those (+ blank, + one "other" unit; ``espnet_llm.asr.ctc``);
                                   null: the whole LLM vocabulary
    text_lowercase                 lower-case transcripts before the LLM tokenizer (AN4 is upper-case)
    rir_scp, noise_scp, ...        training-time audio augmentation, ESPnet's CommonPreprocessor with ASRTask's names
                                   (rir_apply_prob, noise_apply_prob, noise_db_range, speech_volume_normalize)
    preprocessor_conf              more CommonPreprocessor keywords: data_aug_effects, data_aug_num, data_aug_prob
                                   (espnet2.layers.augmentation's speed_perturb, pitch_shift, equalization, ...)

Text is tokenised by ESPnet's CommonPreprocessor with ``token_type=hugging_face`` and ``bpemodel`` = the LLM
directory (this works offline for a local directory); ``LLMTextPreprocessor`` adds the lower-casing.

``--init_param exp/asr/valid.acc.ave.pth:encoder:encoder`` loads the baseline ESPnet ASR model's encoder (same
attribute names ``frontend``/``normalize``/``encoder`` as ``ESPnetASRModel``). Checkpoints leave out the frozen LLM
weights (see ``espnet_llm.asr.espnet_model``); ``llm_conf.name_or_path`` must still hold the same LLM when a
checkpoint is loaded.
"""
import argparse
import logging
from typing import Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import torch
from espnet2.asr.ctc import CTC
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.frontend.default import DefaultFrontend
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.asr.specaug.specaug import SpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.layers.global_mvn import GlobalMVN
from espnet2.layers.utterance_mvn import UtteranceMVN
from espnet2.tasks.abs_task import AbsTask
from espnet2.tasks.asr import encoder_choices as espnet_encoder_choices
from espnet2.train.class_choices import ClassChoices
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.train.preprocessor import CommonPreprocessor
from espnet2.train.trainer import Trainer
from espnet2.utils.get_default_kwargs import get_default_kwargs
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import float_or_none, int_or_none, str2bool, str_or_none
from typeguard import typechecked

from espnet_llm.asr.ctc import SubsetCTC, read_token_ids
from espnet_llm.asr.espnet_model import LLMPrefixASRModel
from espnet_llm.asr.llm import DEFAULT_LORA, check_llm_dir, llm_fingerprint, load_causal_lm, load_tokenizer
from espnet_llm.asr.projector.abs_projector import AbsProjector
from espnet_llm.asr.projector.conv import ConvProjector
from espnet_llm.asr.projector.stack import StackLinearProjector, StackMLPProjector
from espnet_llm.tasks.optim import add_encoder_lr_scale, encoder_scaled_optimizers

FEATS_FRAME_SHIFT_MS = 10.0  # Kaldi fbank in dump/ (docs/ARCHITECTURE.md)
DEFAULT_LLM_CONF = dict(
    name_or_path="exp/llm/smollm2-135m", tuning="lora", lora=DEFAULT_LORA, dtype="float32", trust_remote_code=False
)
DEFAULT_MODEL_CONF = dict(prompt="", text_mask_prob=0.0, ctc_weight=0.0, freeze_encoder=False)

extra_encoders = {}
try:  # written by another part of the toolkit; the task works without it
    from espnet_llm.asr.encoder.whisper_encoder import WhisperEncoder

    extra_encoders["whisper"] = WhisperEncoder
except ImportError as e:
    logging.debug(f"espnet_llm WhisperEncoder unavailable: {e}")

frontend_choices = ClassChoices(
    name="frontend",
    classes=dict(default=DefaultFrontend),
    type_check=AbsFrontend,
    default=None,
    optional=True,
)
specaug_choices = ClassChoices(
    name="specaug", classes=dict(specaug=SpecAug), type_check=AbsSpecAug, default=None, optional=True
)
normalize_choices = ClassChoices(
    "normalize",
    classes=dict(global_mvn=GlobalMVN, utterance_mvn=UtteranceMVN),
    type_check=AbsNormalize,
    default="utterance_mvn",
    optional=True,
)
encoder_choices = ClassChoices(
    "encoder",
    # ESPnet's "whisper" (OpenAIWhisperEncoder, needs the openai-whisper package) is replaced by ours
    classes={**espnet_encoder_choices.classes, **extra_encoders},
    type_check=AbsEncoder,
    default="conformer",
)
projector_choices = ClassChoices(
    "projector",
    classes=dict(stack_linear=StackLinearProjector, stack_mlp=StackMLPProjector, conv=ConvProjector),
    type_check=AbsProjector,
    default="stack_linear",
)
model_choices = ClassChoices(
    "model", classes=dict(llm_prefix=LLMPrefixASRModel), type_check=LLMPrefixASRModel, default="llm_prefix"
)


class LLMTextPreprocessor(CommonPreprocessor):
    """ESPnet's CommonPreprocessor with the LLM's Hugging Face tokenizer, optionally lower-casing the text first."""

    def __init__(self, train: bool, llm_dir: str, text_lowercase: bool = False, **kwargs):
        llm_dir = str(check_llm_dir(llm_dir))
        super().__init__(train, token_type="hugging_face", token_list=llm_dir, bpemodel=llm_dir, **kwargs)
        self.text_lowercase = text_lowercase

    def _speech_process(self, data: Dict[str, object]) -> Dict[str, object]:
        """ESPnet's RIR / noise / volume steps, then ``data_aug_effects`` on the mono signal.

        ESPnet's RIR / noise step leaves a mono ``(Time,)`` signal as ``(Time, 1)``, which DataAugmentation refuses
        and the Whisper encoder does not take, so it is squeezed back here and the effects run last, on ``(Time,)``.
        """
        data_aug, self.data_aug = self.data_aug, None
        try:
            data = super()._speech_process(data)
        finally:
            self.data_aug = data_aug
        if self.speech_name not in data:
            return data
        speech = data[self.speech_name]
        if isinstance(speech, np.ndarray) and speech.ndim == 2 and speech.shape[1] == 1:
            data[self.speech_name] = speech = np.ascontiguousarray(speech[:, 0], dtype=np.float32)  # RIR/noise: mono
        if self.train and data_aug is not None and self.data_aug_prob > 0:
            if self.data_aug_prob >= np.random.random():
                data[self.speech_name] = data_aug(np.ascontiguousarray(speech, dtype=np.float32), self.fs)
        return data

    def _text_process(self, data: Dict[str, object]) -> Dict[str, np.ndarray]:
        text = data.get(self.text_name)
        if self.text_lowercase and isinstance(text, str):
            data = {**data, self.text_name: text.lower()}
        return super()._text_process(data)


class LLMASRTask(AbsTask):
    num_optimizers: int = 1
    class_choices_list = [
        frontend_choices,
        specaug_choices,
        normalize_choices,
        encoder_choices,
        projector_choices,
        model_choices,
    ]
    trainer = Trainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--input_size", type=int_or_none, default=None, help="Feature dimension when frontend is null"
        )
        group.add_argument(
            "--encoder_frame_shift_ms",
            type=float_or_none,
            default=None,
            help="Encoder output frame shift for projector stride_ms; default: encoder.frame_shift_ms or measured",
        )
        group.add_argument(
            "--llm_conf",
            action=NestedDictAction,
            default=dict(DEFAULT_LLM_CONF),
            help="The causal LM: name_or_path (local dir), tuning (frozen|lora|full), lora, dtype, trust_remote_code",
        )
        group.add_argument(
            "--ctc_conf", action=NestedDictAction, default=get_default_kwargs(CTC), help="Keyword arguments of CTC"
        )

        add_encoder_lr_scale(group)
        group.add_argument(
            "--ctc_vocab",
            type=str_or_none,
            default=None,
            help="File of LLM token ids the CTC head predicts (SubsetCTC); null: the whole LLM vocabulary",
        )

        group = parser.add_argument_group(description="Preprocess related")
        group.add_argument("--use_preprocessor", type=str2bool, default=True, help="Tokenise text with the LLM")
        group.add_argument(
            "--text_lowercase", type=str2bool, default=False, help="Lower-case transcripts before tokenising"
        )
        group.add_argument(
            "--cleaner", type=str_or_none, choices=[None, "tacotron", "jaconv", "vietnamese"], default=None
        )
        # Training-time audio augmentation: ESPnet's own (CommonPreprocessor), with ASRTask's option names
        group.add_argument(
            "--speech_volume_normalize", type=float_or_none, default=None, help="Scale the peak amplitude to this"
        )
        group.add_argument("--rir_scp", type=str_or_none, default=None, help="wav.scp of room impulse responses")
        group.add_argument("--rir_apply_prob", type=float, default=1.0, help="Probability of convolving an RIR")
        group.add_argument("--noise_scp", type=str_or_none, default=None, help="wav.scp of noise recordings")
        group.add_argument("--noise_apply_prob", type=float, default=1.0, help="Probability of adding noise")
        group.add_argument("--noise_db_range", type=str, default="13_15", help="SNR range in dB, 'low_high'")
        group.add_argument(
            "--preprocessor_conf",
            action=NestedDictAction,
            default=dict(),
            help="More CommonPreprocessor keywords, e.g. data_aug_effects / data_aug_num / data_aug_prob "
            "(espnet2.layers.augmentation: speed_perturb, pitch_shift, equalization, ...) and fs (default 16000)",
        )

        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)
        parser.set_defaults(model_conf=dict(DEFAULT_MODEL_CONF))

    @classmethod
    def build_optimizers(cls, args: argparse.Namespace, model: torch.nn.Module) -> List[torch.optim.Optimizer]:
        """ESPnet's optimizer; with ``encoder_lr_scale`` != 1, two parameter groups (espnet_llm.tasks.optim)."""
        return encoder_scaled_optimizers(args, model) or super().build_optimizers(args, model)

    @classmethod
    @typechecked
    def build_collate_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Callable[[Collection[Tuple[str, Dict[str, np.ndarray]]]], Tuple[List[str], Dict[str, torch.Tensor]]]:
        return CommonCollateFn(float_pad_value=0.0, int_pad_value=-1)

    @classmethod
    @typechecked
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.array]], Dict[str, np.ndarray]]]:
        if not args.use_preprocessor:
            return None
        conf = {"fs": 16000, **(getattr(args, "preprocessor_conf", None) or {})}
        return LLMTextPreprocessor(
            train=train,
            llm_dir=args.llm_conf["name_or_path"],
            text_lowercase=args.text_lowercase,
            text_cleaner=args.cleaner,
            # NOTE: getattr for configs written before these options existed
            speech_volume_normalize=getattr(args, "speech_volume_normalize", None),
            rir_scp=getattr(args, "rir_scp", None),
            rir_apply_prob=getattr(args, "rir_apply_prob", 1.0),
            noise_scp=getattr(args, "noise_scp", None),
            noise_apply_prob=getattr(args, "noise_apply_prob", 1.0),
            noise_db_range=getattr(args, "noise_db_range", "13_15"),
            **conf,
        )

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",) if inference else ("speech", "text")

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ()

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> LLMPrefixASRModel:
        unknown = sorted(set(args.llm_conf) - set(DEFAULT_LLM_CONF))
        if unknown:  # a misspelt key would otherwise be ignored silently
            raise ValueError(f"llm_conf: unknown key(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_LLM_CONF)})")
        llm_conf = {**DEFAULT_LLM_CONF, **args.llm_conf}
        model_conf = {**DEFAULT_MODEL_CONF, **args.model_conf}

        # 1. Frontend
        if args.input_size is None:
            frontend = frontend_choices.get_class(args.frontend)(**args.frontend_conf)
            input_size = frontend.output_size()
        else:
            args.frontend, args.frontend_conf = None, {}
            frontend, input_size = None, args.input_size

        # 2. Data augmentation for spectrogram
        specaug = None
        if args.specaug is not None:
            specaug = specaug_choices.get_class(args.specaug)(**args.specaug_conf)

        # 3. Normalization layer
        normalize = None
        if args.normalize is not None:
            normalize = normalize_choices.get_class(args.normalize)(**args.normalize_conf)

        # 4. Encoder
        encoder = encoder_choices.get_class(args.encoder)(input_size=input_size, **args.encoder_conf)

        # 5. LLM and its tokenizer
        llm = load_causal_lm(
            llm_conf["name_or_path"],
            tuning=llm_conf["tuning"],
            lora_conf=llm_conf["lora"] if llm_conf["tuning"] == "lora" else None,
            dtype=llm_conf["dtype"],
            trust_remote_code=llm_conf["trust_remote_code"],
        )
        tokenizer = load_tokenizer(llm_conf["name_or_path"], trust_remote_code=llm_conf["trust_remote_code"])
        if tokenizer.eos_token_id is None:
            raise ValueError(f"the tokenizer of '{llm_conf['name_or_path']}' has no EOS token")
        embedding = llm.get_input_embeddings()

        # 6. Projector: encoder frames -> LLM embeddings at the configured stride
        projector_conf = dict(args.projector_conf)
        if projector_conf.get("stride_ms") is not None and projector_conf.get("input_frame_shift_ms") is None:
            projector_conf["input_frame_shift_ms"] = encoder_frame_shift_ms(args, frontend, encoder, input_size)
            args.projector_conf = projector_conf  # recorded in config.yaml
        projector = projector_choices.get_class(args.projector)(
            input_size=encoder.output_size(), output_size=embedding.embedding_dim, **projector_conf
        )

        # 7. Auxiliary CTC over the LLM vocabulary on the encoder output
        ctc = None
        if model_conf["ctc_weight"] > 0.0 and getattr(args, "ctc_vocab", None):
            ctc = SubsetCTC(
                embedding.num_embeddings, read_token_ids(args.ctc_vocab), encoder.output_size(), **args.ctc_conf
            )
        elif model_conf["ctc_weight"] > 0.0:
            ctc = CTC(odim=embedding.num_embeddings, encoder_output_size=encoder.output_size(), **args.ctc_conf)

        # 8. Model
        model_conf.pop("ctc", None)  # built above; --print_config lists it among the model's keyword arguments
        prompt = model_conf.pop("prompt") or ""
        prompt_ids = list(model_conf.pop("prompt_ids", None) or [])
        if prompt:
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        mask_id = next(i for i in (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None)
        model_class = model_choices.get_class(args.model)
        model = model_class(
            frontend=frontend,
            specaug=specaug,
            normalize=normalize,
            encoder=encoder,
            projector=projector,
            llm=llm,
            eos_id=tokenizer.eos_token_id,
            pad_id=pad_id,
            prompt_ids=prompt_ids,
            mask_token_id=model_conf.pop("mask_token_id", mask_id),
            ctc=ctc,
            llm_fingerprint=llm_fingerprint(llm_conf["name_or_path"]),
            **model_conf,
        )
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        logging.info(f"LLMPrefixASRModel: {trainable} of {total} parameters trainable, stride {projector.output_stride()}")
        return model


def encoder_frame_shift_ms(
    args: argparse.Namespace, frontend: Optional[AbsFrontend], encoder: torch.nn.Module, input_size: int
) -> float:
    """Encoder output frame shift: --encoder_frame_shift_ms, else ``encoder.frame_shift_ms``, else measured.

    Measuring runs 800 zero feature frames (10 ms each) through the encoder and rounds the length ratio
    (e.g. conv2d subsampling: 800 -> 199 frames, ratio 4 -> 40 ms). It needs ``frontend: null``.
    """
    if args.encoder_frame_shift_ms is not None:
        return float(args.encoder_frame_shift_ms)
    declared = getattr(encoder, "frame_shift_ms", None)
    if declared is not None:
        return float(declared)
    if frontend is not None:
        raise ValueError("set --encoder_frame_shift_ms: it cannot be measured through a frontend")
    frames = 800
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        _, out_lengths, _ = encoder(torch.zeros(1, frames, input_size), torch.tensor([frames]))
    encoder.train(was_training)
    return FEATS_FRAME_SHIFT_MS * round(frames / int(out_lengths[0]))
