#!/usr/bin/env python3
"""Analysis figures of a trained speech LLM: audio/text embedding alignment, LLM attention maps, training curves.

Usage:
    # Whisper-input model (raw audio), two test utterances, attention of the first and last LLM layer, head 0
    python -m espnet_llm.bin.analysis_plot --exp_dir exp/llm_asr_whisper_lora \
        --data_path_and_name_and_type data/test/wav.scp,speech,sound --text data/test/text \
        --num_utts 2 --layers 0 -1 --heads 0
    # conformer-input model (fbank), chosen utterances, all heads averaged
    python -m espnet_llm.bin.analysis_plot --exp_dir exp/llm_asr_lora_stride80 \
        --data_path_and_name_and_type dump/fbank/test/feats.scp,speech,kaldi_ark --text data/test/text \
        --utts fash-an251-b fash-an253-b --layers 2 --heads mean
    # training curves only
    python -m espnet_llm.bin.analysis_plot --exp_dir exp/llm_asr_lora_stride80 --curves_only

Writes into `<exp_dir>/analysis/` (or --out_dir) and prints each path:
    cosine_<utt>.png, cosine_<utt>.npy   cosine similarity of every projected audio embedding (rows, one per stride)
                                         with the LLM input embedding of every transcript token (columns), as
                                         Fathullah et al.'s alignment figure: a monotonic diagonal band when the
                                         projector has learnt to put the audio where the LLM expects the words
    attention_<utt>.png                  self-attention of the chosen LLM layers/heads over the positions
                                         [prompt | audio | transcript + EOS] (Schmitt et al., Fig. 1), with the
                                         segment boundaries drawn; computed with attn_implementation="eager"
    curves.png                           loss and acc per epoch, train and valid, from the `<N>epoch results` lines of
                                         <exp_dir>/train*.log (ESPnet's trainer log)

The transcript is tokenised as in training (lower-cased when the model was trained with text_lowercase).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from espnet2.utils.types import str2triple_str

from espnet_llm.packing import find_model_files
from espnet_llm.scoring import read_text
from espnet_llm.trainlog import read_epoch_results


def _pyplot():
    """matplotlib.pyplot on the Agg backend (files only), imported when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load_model(exp_dir: Union[str, Path], device: str = "cpu"):
    """(model in eval mode with eager attention, tokenizer, train args) of a trained exp dir."""
    from espnet_llm.asr.llm import load_tokenizer
    from espnet_llm.tasks.llm_asr import LLMASRTask

    config, model_file = find_model_files(exp_dir)
    model, train_args = LLMASRTask.build_model_from_file(config, model_file, device)
    model.eval()
    base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    if hasattr(base, "set_attn_implementation"):
        base.set_attn_implementation("eager")  # sdpa returns no attention weights
    else:
        base.config._attn_implementation = "eager"
    tokenizer = load_tokenizer(train_args.llm_conf["name_or_path"], train_args.llm_conf.get("trust_remote_code", False))
    return model, tokenizer, train_args


def transcript_ids(tokenizer, text: str, lowercase: bool) -> List[int]:
    return tokenizer(text.lower() if lowercase else text, add_special_tokens=False)["input_ids"]


def cosine_matrix(model, speech: torch.Tensor, ids: Sequence[int]) -> np.ndarray:
    """(T', Lt): cosine of each projected audio embedding with the input embedding of each transcript token."""
    import torch

    with torch.no_grad():
        return _cosine_matrix(model, speech, ids)


def _cosine_matrix(model, speech: torch.Tensor, ids: Sequence[int]) -> np.ndarray:
    import torch

    speech = speech[None].float()
    audio, audio_lengths = model.encode(speech, torch.tensor([speech.shape[1]]))  # (1, T', D_llm)
    audio = audio[0, : int(audio_lengths[0])].float()
    text = model.embed_tokens(torch.tensor(list(ids), dtype=torch.long, device=audio.device)).float()  # (Lt, D_llm)
    audio = torch.nn.functional.normalize(audio, dim=-1)
    text = torch.nn.functional.normalize(text, dim=-1)
    return (audio @ text.T).cpu().numpy()


def attention_maps(model, speech: torch.Tensor, ids: Sequence[int]) -> Tuple[List[np.ndarray], Dict[str, int]]:
    """Per LLM layer (heads, L, L) attention over [prompt | audio | transcript + EOS], and the segment lengths."""
    import torch

    with torch.no_grad():
        return _attention_maps(model, speech, ids)


def _attention_maps(model, speech: torch.Tensor, ids: Sequence[int]) -> Tuple[List[np.ndarray], Dict[str, int]]:
    import torch

    speech = speech[None].float()
    audio, audio_lengths = model.encode(speech, torch.tensor([speech.shape[1]]))
    text = torch.tensor([list(ids)], dtype=torch.long, device=audio.device)
    spliced = model.splice_batch(audio, audio_lengths, text, torch.tensor([len(ids)], device=audio.device))
    out = model.llm(inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask,
                    output_attentions=True, use_cache=False)
    if not out.attentions or out.attentions[0] is None:
        raise RuntimeError("the LLM returned no attention weights (needs attn_implementation='eager')")
    segments = dict(prompt=int(model.prompt_ids.numel()), audio=int(audio_lengths[0]), text=len(ids) + 1)
    return [a[0].float().cpu().numpy() for a in out.attentions], segments


def _select_layers(n_layers: int, layers: Sequence[int]) -> List[int]:
    chosen = []
    for layer in layers:
        if not -n_layers <= layer < n_layers:
            raise ValueError(f"layer {layer} out of range: the LLM has {n_layers} layers")
        chosen.append(layer % n_layers)
    return chosen


def plot_cosine(matrix: np.ndarray, tokens: Sequence[str], title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(tokens) + 2), max(3, 0.12 * matrix.shape[0] + 2)))
    image = ax.imshow(matrix, aspect="auto", origin="upper", cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(len(tokens)))
    ax.set_xticklabels(tokens, rotation=90, fontsize=7)
    ax.set_xlabel("transcript token (LLM input embedding)")
    ax.set_ylabel("audio embedding (projector output frame)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_attention(maps: List[np.ndarray], segments: Dict[str, int], layers: Sequence[int], heads: Sequence[str],
                   title: str, path: Path) -> Path:
    plt = _pyplot()
    panels = []
    for layer in layers:
        for head in heads:
            weights = maps[layer].mean(axis=0) if head == "mean" else maps[layer][int(head)]
            panels.append((f"layer {layer}, head {head}", weights))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    edges = np.cumsum([segments["prompt"], segments["audio"]])
    for ax, (name, weights) in zip(axes[0], panels):
        image = ax.imshow(weights, cmap="magma", interpolation="nearest", vmin=0.0)
        for edge in edges:
            if 0 < edge < weights.shape[0]:
                ax.axhline(edge - 0.5, color="cyan", lw=0.8)
                ax.axvline(edge - 0.5, color="cyan", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("key position [prompt | audio | text]")
        ax.set_ylabel("query position")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"{title}  (prompt {segments['prompt']}, audio {segments['audio']}, text+EOS {segments['text']})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_curves(exp_dir: Union[str, Path], path: Path, keys: Sequence[str] = ("loss", "acc")) -> Optional[Path]:
    """Per-epoch `keys` of train and valid; None when the logs hold no `epoch results` line."""
    epochs = read_epoch_results(exp_dir)
    if not epochs:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for section, style in (("train", "o-"), ("valid", "s--")):
            points = [(e, s[section][key]) for e, s in epochs.items()
                      if isinstance(s.get(section, {}).get(key), float)]
            if points:
                ax.plot(*zip(*points), style, label=section)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(str(exp_dir), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def load_utterances(data_spec: Sequence[Tuple[str, str, str]], keys: Optional[Sequence[str]], num_utts: int,
                    train_args) -> Dict[str, torch.Tensor]:
    """{utt: speech (Samples,) or (Frames, Dim)} of the chosen utterances (the first `num_utts` without --utts)."""
    from espnet_llm.tasks.llm_asr import LLMASRTask

    loader = LLMASRTask.build_streaming_iterator(
        data_spec, dtype="float32", batch_size=1, num_workers=0, preprocess_fn=None,
        collate_fn=LLMASRTask.build_collate_fn(train_args, False), inference=True,
    )
    wanted = set(keys) if keys else None
    found: Dict[str, torch.Tensor] = {}
    for batch_keys, batch in loader:
        key = batch_keys[0]
        if (wanted is None and len(found) < num_utts) or (wanted is not None and key in wanted):
            found[key] = batch["speech"][0]
        if (wanted is None and len(found) >= num_utts) or (wanted is not None and len(found) == len(wanted)):
            break
    if wanted is not None and set(found) != wanted:
        raise ValueError(f"utterance(s) not in the data: {', '.join(sorted(wanted - set(found)))}")
    return found


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", required=True, type=Path, help="trained speech LLM (config.yaml + model file)")
    parser.add_argument("--data_path_and_name_and_type", type=str2triple_str, action="append", default=[],
                        help="speech input as for decoding, e.g. data/test/wav.scp,speech,sound")
    parser.add_argument("--text", type=Path, help="Kaldi text with the transcripts of the utterances")
    parser.add_argument("--utts", nargs="+", default=None, help="utterance ids (default: the first --num_utts)")
    parser.add_argument("--num_utts", type=int, default=2)
    parser.add_argument("--layers", nargs="+", type=int, default=[0, -1], help="LLM layers (negative: from the top)")
    parser.add_argument("--heads", nargs="+", default=["0"], help="head indices, or 'mean' (average of the heads)")
    parser.add_argument("--out_dir", type=Path, default=None, help="default: <exp_dir>/analysis")
    parser.add_argument("--curves_only", action="store_true", help="only the training curves (no model, no data)")
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = get_parser().parse_args(argv)
    out_dir = args.out_dir or args.exp_dir / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    curves = plot_curves(args.exp_dir, out_dir / "curves.png")
    if curves is None:
        logging.warning(f"no `epoch results` lines in {args.exp_dir}/train*.log: no curves.png")
    else:
        written.append(curves)
    if not args.curves_only:
        if not args.data_path_and_name_and_type or args.text is None:
            sys.exit("analysis_plot: give --data_path_and_name_and_type and --text (or --curves_only)")
        model, tokenizer, train_args = load_model(args.exp_dir, args.device)
        for head in args.heads:
            if head != "mean" and not head.isdigit():
                sys.exit(f"analysis_plot: --heads takes indices or 'mean', got {head!r}")
        texts = read_text(args.text)
        try:
            utterances = load_utterances(args.data_path_and_name_and_type, args.utts, args.num_utts, train_args)
            for utt, speech in utterances.items():
                if utt not in texts:
                    raise ValueError(f"{utt} has no transcript in {args.text}")
                ids = transcript_ids(tokenizer, texts[utt], getattr(train_args, "text_lowercase", False))
                tokens = [tokenizer.decode([i]) for i in ids]
                matrix = cosine_matrix(model, speech.to(args.device), ids)
                np.save(out_dir / f"cosine_{utt}.npy", matrix)
                written.append(plot_cosine(matrix, tokens, f"{utt}: {texts[utt]}", out_dir / f"cosine_{utt}.png"))
                maps, segments = attention_maps(model, speech.to(args.device), ids)
                layers = _select_layers(len(maps), args.layers)
                written.append(plot_attention(maps, segments, layers, args.heads, utt, out_dir / f"attention_{utt}.png"))
        except ValueError as e:
            sys.exit(f"analysis_plot: {e}")
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
