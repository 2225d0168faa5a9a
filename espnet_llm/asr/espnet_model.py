"""LLMPrefixASRModel: ESPnet encoder -> projector -> ``[prompt | audio | transcript + EOS]`` -> causal LM.

Training (Fathullah et al. 2023): the audio embeddings are spliced between an optional text prompt and the
transcript, and the LLM is trained to continue with the transcript and EOS (cross entropy on those tokens only).

Design choices (documented here because decoding depends on them):
- dtype: ESPnet casts the whole model to ``train_dtype`` after ``build_model``, so ``llm_conf.dtype`` only sets
  the loading precision; train in bfloat16 with ESPnet's ``train_dtype``/``use_amp``.
- Text comes from ESPnet's data pipeline as ids of the LLM's own tokenizer, padded with -1 by ESPnet's collate.
  The EOS is appended here, not by the preprocessor, so a ``text`` file never carries it.
- Text masking (``text_mask_prob``): during training, each *input* transcript token (the teacher-forcing input,
  EOS excluded) is replaced, with that probability, by the embedding of ``mask_token_id`` (the task passes the
  tokenizer's unk, else pad, else EOS id). The targets (labels) are never masked.
- CTC (``ctc_weight > 0``): ESPnet's CTC over the LLM vocabulary on the *encoder* output (not the projector's:
  at strides near 1 s there are fewer projector frames than tokens, which CTC cannot align). As everywhere in
  ESPnet the blank is id 0, here the LLM's token 0 (usually a special token such as ``<|endoftext|>`` or
  ``<unk>``); transcripts that contain id 0 cannot be CTC targets.
  ``loss = ctc_weight * loss_ctc + (1 - ctc_weight) * loss_llm``, with CTC put on a per-token scale like the LLM loss.
- Checkpoints: ``state_dict()`` leaves out the LLM's frozen parameters (all of them when frozen, the base model
  under LoRA); they are reloaded from the LLM directory when the model is built. ``load_state_dict`` fills the
  absent frozen LLM entries from the current model, so strict loading of such a checkpoint works. A frozen
  encoder (``freeze_encoder``) stays in the checkpoint: it does not come from the LLM directory.
- The LLM's identity (``llm_fingerprint``, ``espnet_llm.asr.llm.llm_fingerprint`` of the LLM directory) is a buffer
  of every checkpoint (32 bytes as float64, which ESPnet's model averaging keeps exact). Loading a checkpoint whose
  fingerprint differs from the model's is an error: the LoRA, projector and CTC weights belong to the LLM they were
  trained with. A checkpoint without one (or a model built without one) is loaded unchecked.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
from espnet2.asr.ctc import CTC
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_llm.asr.projector.abs_projector import AbsProjector
from espnet_llm.asr.splice import SpliceOutput, splice

IGNORE_ID = -100  # Hugging Face's label ignore index
ESPNET_PAD = -1  # ESPnet's CommonCollateFn int padding


class LLMPrefixASRModel(AbsESPnetModel):
    """Speech LLM with the audio as a prefix of the causal LM's input.

    Args:
        frontend, specaug, normalize: ESPnet feature modules (each may be None).
        encoder: ESPnet encoder (Batch, T, D_in) -> (Batch, T_enc, D_enc).
        projector: (Batch, T_enc, D_enc) -> (Batch, T', D_llm).
        llm: Hugging Face causal LM, or a peft ``PeftModel`` around one.
        eos_id: the LLM's end-of-sentence id, appended to every transcript.
        pad_id: id put in place of ESPnet's -1 padding before the embedding lookup (never a target).
        prompt_ids: token ids of the text prompt placed before the audio (empty: no prompt).
        text_mask_prob: probability of masking each input transcript token in training (see module doc).
        mask_token_id: the id whose embedding replaces a masked input token (default: ``pad_id``).
        ctc: ESPnet CTC head over the LLM vocabulary on the encoder output, or None.
        ctc_weight: weight of the CTC loss (0 disables it; > 0 needs ``ctc``).
        freeze_encoder: keep the encoder's parameters fixed (and the encoder in eval mode).
        llm_fingerprint: hex sha256 of the LLM directory (see module doc); empty: not recorded.
    """

    def __init__(
        self,
        frontend: Optional[AbsFrontend],
        specaug: Optional[AbsSpecAug],
        normalize: Optional[AbsNormalize],
        encoder: AbsEncoder,
        projector: AbsProjector,
        llm: torch.nn.Module,
        eos_id: int,
        pad_id: int,
        prompt_ids: Sequence[int] = (),
        text_mask_prob: float = 0.0,
        mask_token_id: Optional[int] = None,
        ctc: Optional[CTC] = None,
        ctc_weight: float = 0.0,
        freeze_encoder: bool = False,
        llm_fingerprint: str = "",
    ):
        super().__init__()
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        if ctc_weight > 0.0 and ctc is None:
            raise ValueError("ctc_weight > 0 needs a ctc module")
        if not 0.0 <= text_mask_prob < 1.0:
            raise ValueError(f"text_mask_prob must be in [0, 1), got {text_mask_prob}")
        self.frontend = frontend
        self.specaug = specaug
        self.normalize = normalize
        self.encoder = encoder
        self.projector = projector
        self.llm = llm
        self.ctc = ctc if ctc_weight > 0.0 else None
        self.eos_id = int(eos_id)
        self.pad_id = int(pad_id)
        self.mask_token_id = self.pad_id if mask_token_id is None else int(mask_token_id)
        self.text_mask_prob = float(text_mask_prob)
        self.ctc_weight = float(ctc_weight)
        self.freeze_encoder = bool(freeze_encoder)
        self.register_buffer("prompt_ids", torch.tensor(list(prompt_ids), dtype=torch.long), persistent=False)
        fingerprint = bytes.fromhex(llm_fingerprint) if llm_fingerprint else bytes(32)
        self.register_buffer("llm_fingerprint", torch.tensor(list(fingerprint), dtype=torch.float64))
        if self.freeze_encoder:
            self.encoder.requires_grad_(False)
        self.register_state_dict_post_hook(_drop_frozen_llm_entries)
        self.register_load_state_dict_pre_hook(_fill_frozen_llm_entries)
        self.register_load_state_dict_pre_hook(_check_llm_fingerprint)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def frozen_llm_keys(self) -> Sequence[str]:
        """State-dict keys (relative to this model) that checkpoints leave out."""
        return [f"llm.{n}" for n, p in self.llm.named_parameters(remove_duplicate=False) if not p.requires_grad]

    # ----------------------------------------------------------------------------------------------------------
    # Embeddings
    # ----------------------------------------------------------------------------------------------------------
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """(...) LLM ids -> (..., D_llm) input embeddings."""
        return self.llm.get_input_embeddings()(ids)

    def prompt_embeds(self) -> Optional[torch.Tensor]:
        """(Tp, D_llm) prompt embeddings, or None without a prompt."""
        if self.prompt_ids.numel() == 0:
            return None
        return self.embed_tokens(self.prompt_ids)

    def encode_frames(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frontend, SpecAugment (training only), normalization, encoder: -> (Batch, T_enc, D_enc), (Batch,)."""
        feats, feats_lengths = self._extract_feats(speech, speech_lengths)  # (Batch, T, D_in)
        if self.specaug is not None and self.training:
            feats, feats_lengths = self.specaug(feats, feats_lengths)
        if self.normalize is not None:
            feats, feats_lengths = self.normalize(feats, feats_lengths)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            encoder_out, encoder_out_lens, _ = self.encoder(feats, feats_lengths)  # (Batch, T_enc, D_enc)
        if isinstance(encoder_out, tuple):  # intermediate CTC outputs
            encoder_out = encoder_out[0]
        return encoder_out, encoder_out_lens

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Audio embeddings in the LLM's embedding space: -> (Batch, T', D_llm), (Batch,)."""
        encoder_out, encoder_out_lens = self.encode_frames(speech, speech_lengths)
        return self.project(encoder_out, encoder_out_lens)

    def project(self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Projector, cast to the LLM's embedding dtype: (Batch, T_enc, D_enc) -> (Batch, T', D_llm)."""
        audio, audio_lengths = self.projector(encoder_out, encoder_out_lens)  # (Batch, T', D_llm)
        return audio.to(self.llm.get_input_embeddings().weight.dtype), audio_lengths

    def build_prefix(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[prompt | audio]`` per utterance, right padded: -> (Batch, P, D_llm), prefix_lengths (Batch,)."""
        audio, audio_lengths = self.encode(speech, speech_lengths)
        return self.prefix_from_audio(audio, audio_lengths)

    def prefix_from_audio(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Like ``build_prefix`` from audio embeddings already computed (e.g. when the encoder output feeds CTC)."""
        empty = audio.new_zeros(audio.shape[0], 0, audio.shape[2])
        ids = torch.zeros(audio.shape[0], 0, dtype=torch.long, device=audio.device)
        out = splice(audio, audio_lengths, empty, torch.zeros_like(audio_lengths), ids, self.prompt_embeds())
        return out.inputs_embeds, out.prefix_lengths

    # ----------------------------------------------------------------------------------------------------------
    # Training
    # ----------------------------------------------------------------------------------------------------------
    def append_eos(self, text: torch.Tensor, text_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(Batch, Lt) ids padded with -1 -> (Batch, Lt + 1) ids with EOS at ``text_lengths``, padded with pad_id."""
        batch = text.shape[0]
        ids = torch.cat([text, text.new_full((batch, 1), ESPNET_PAD)], dim=1)
        ids = ids.masked_fill(ids == ESPNET_PAD, self.pad_id)
        ids[torch.arange(batch, device=text.device), text_lengths] = self.eos_id
        return ids, text_lengths + 1

    def mask_inputs(self, ids: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing inputs with each transcript token (EOS excluded) replaced by mask_token_id w.p. text_mask_prob."""
        if not self.training or self.text_mask_prob == 0.0:
            return ids
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        draw = torch.rand(ids.shape, device=ids.device) < self.text_mask_prob
        return ids.masked_fill(draw & (positions < text_lengths[:, None]), self.mask_token_id)

    def splice_batch(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor, text: torch.Tensor, text_lengths: torch.Tensor
    ) -> SpliceOutput:
        """``[prompt | audio | text + EOS]`` inputs and labels for the LLM."""
        targets, target_lengths = self.append_eos(text, text_lengths)  # (Batch, Lt + 1)
        inputs = self.mask_inputs(targets, text_lengths)  # (Batch, Lt + 1)
        return splice(
            audio,
            audio_lengths,
            self.embed_tokens(inputs),  # (Batch, Lt + 1, D_llm)
            target_lengths,
            targets,
            self.prompt_embeds(),
            ignore_id=IGNORE_ID,
        )

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """speech (Batch, Samples or Frames[, Dim]), text (Batch, Lt) LLM ids padded with -1 -> loss, stats, weight."""
        batch_size = speech.shape[0]
        text = text[:, : int(text_lengths.max())]

        # 1. Encoder and projector
        encoder_out, encoder_out_lens = self.encode_frames(speech, speech_lengths)  # (Batch, T_enc, D_enc)
        audio, audio_lengths = self.project(encoder_out, encoder_out_lens)  # (Batch, T', D_llm)

        # 2. Splice and run the LLM; Hugging Face shifts the labels inside its loss
        spliced = self.splice_batch(audio, audio_lengths, text, text_lengths)  # (Batch, L, D_llm)
        out = self.llm(
            inputs_embeds=spliced.inputs_embeds,
            attention_mask=spliced.attention_mask,
            labels=spliced.labels,
            use_cache=False,
        )
        loss_llm = out.loss
        acc = token_accuracy(out.logits, spliced.labels)  # logits (Batch, L, Vocab)

        # 3. Auxiliary CTC on the encoder output
        loss_ctc = None
        if self.ctc is not None:
            # ESPnet's CTC loss is summed over each utterance's tokens (then averaged over the batch); the
            # LLM's loss is a mean over tokens. Put CTC on the same per-token scale so ctc_weight means
            # what it says instead of letting CTC dominate the gradient.
            loss_ctc = self.ctc(encoder_out, encoder_out_lens, text, text_lengths)
            loss_ctc = loss_ctc * text.size(0) / text_lengths.sum().clamp(min=1)
            loss = self.ctc_weight * loss_ctc + (1.0 - self.ctc_weight) * loss_llm
        else:
            loss = loss_llm

        stats = dict(
            loss=loss.detach(),
            loss_llm=loss_llm.detach(),
            loss_ctc=loss_ctc.detach() if loss_ctc is not None else None,
            acc=acc,
        )
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight

    def collect_feats(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, text: torch.Tensor = None, text_lengths=None, **kwargs
    ) -> Dict[str, torch.Tensor]:
        feats, feats_lengths = self._extract_feats(speech, speech_lengths)
        return {"feats": feats, "feats_lengths": feats_lengths}

    def _extract_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        speech = speech[:, : int(speech_lengths.max())]
        if self.frontend is None:
            # ESPnet's utterance_mvn/global_mvn normalise in place; the caller's tensor must survive encode()
            return speech.clone(), speech_lengths
        return self.frontend(speech, speech_lengths)


def token_accuracy(logits: torch.Tensor, labels: torch.Tensor, ignore_id: int = IGNORE_ID) -> torch.Tensor:
    """Fraction of labelled positions whose next-token argmax is right: logits (B, L, V), labels (B, L) unshifted."""
    predicted = logits[:, :-1].argmax(dim=-1)
    targets = labels[:, 1:]
    scored = targets != ignore_id
    return ((predicted == targets) & scored).sum().float() / scored.sum().clamp(min=1).float()


def _drop_frozen_llm_entries(module: LLMPrefixASRModel, state_dict, prefix: str, local_metadata) -> None:
    for key in module.frozen_llm_keys():
        state_dict.pop(prefix + key, None)


def _fill_frozen_llm_entries(
    module: LLMPrefixASRModel, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
) -> None:
    current = None
    for key in module.frozen_llm_keys():
        if prefix + key not in state_dict:
            if current is None:
                current = dict(module.named_parameters(remove_duplicate=False))
            state_dict[prefix + key] = current[key].detach()


def fingerprint_hex(buffer: torch.Tensor) -> str:
    """The hex digest held in an ``llm_fingerprint`` buffer ("" when none was recorded)."""
    values = bytes(int(round(float(v))) & 0xFF for v in buffer.flatten().tolist())
    return values.hex() if any(values) else ""


def _check_llm_fingerprint(
    module: LLMPrefixASRModel, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
) -> None:
    key = prefix + "llm_fingerprint"
    ours = fingerprint_hex(module.llm_fingerprint)
    if key not in state_dict:  # a checkpoint from before fingerprints (or a partial one): nothing to check
        state_dict[key] = module.llm_fingerprint.detach().clone()
        return
    theirs = fingerprint_hex(state_dict[key])
    if ours and theirs and ours != theirs:
        raise RuntimeError(
            f"this checkpoint was trained with another LLM (fingerprint {theirs[:16]}...) than the one the model was "
            f"built with (llm_conf.name_or_path, fingerprint {ours[:16]}...): its LoRA, projector and CTC weights "
            "belong to that LLM. Point llm_conf.name_or_path (the recipe's --llm / --llm_name) at the LLM it was "
            "trained with, or train a new exp dir for this one"
        )
    if not theirs:
        state_dict[key] = module.llm_fingerprint.detach().clone()
