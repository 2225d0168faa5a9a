"""Shared fixtures: a tiny Llama causal LM with a byte-level BPE tokenizer, saved like a Hugging Face directory;
tiny Kaldi-style feature sets (random fbank-like features + AN4-like text) for training through ESPnet.

Built from a transformers config (no download). Like SmolLM2, the tokenizer's EOS is token 0
(``<|endoftext|>``) and it has no pad token.
"""
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

FEAT_DIM = 8  # feature dim of the tiny Kaldi-style sets of make_data_dir
WORDS = "yes no rubout one two three four five six seven eight nine zero enter erase stop go help repeat start"


def tiny_llm_config(arch: str, vocab_size: int):
    """A tiny config of one of the causal LM architectures the tests train on (1 layer, Gemma 3: 2; 16 dims)."""
    import transformers

    common = dict(vocab_size=vocab_size, bos_token_id=0, eos_token_id=0, tie_word_embeddings=True,
                  initializer_range=0.2)  # confident logits, as a trained LM has: adapters and projector can move the loss
    if arch == "gpt2":
        return transformers.GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=512, **common)
    sizes = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=512)
    classes = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config, "phi": transformers.PhiConfig,
               "gemma": transformers.GemmaConfig, "gemma3": transformers.Gemma3TextConfig}
    # Gemma 3: a sliding-window layer (a window of 4 positions, shorter than any speech prefix) before a global one
    extra = {"gemma": dict(head_dim=8, num_key_value_heads=1),
             "gemma3": dict(head_dim=8, num_key_value_heads=1, num_hidden_layers=2, sliding_window=4,
                            layer_types=["sliding_attention", "full_attention"], pad_token_id=0)}
    extra = extra.get(arch, dict(num_key_value_heads=2))
    sizes.update({k: extra.pop(k) for k in list(extra) if k in sizes})
    return classes[arch](**sizes, **extra, **common)


def save_tiny_llm(path: Path, seed: int = 0, arch: str = "llama") -> Path:
    """A tiny causal LM of `arch` (llama, qwen2, gpt2, phi, gemma, gemma3) with the shared byte-level BPE tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([WORDS] * 20 + [" ".join(reversed(WORDS.split()))] * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    config = tiny_llm_config(arch, len(tokenizer))
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory) -> Path:
    return save_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny-llama")


@pytest.fixture(scope="session")
def make_tiny_llm(tmp_path_factory):
    """make_tiny_llm(arch, seed=0) -> a tiny causal LM dir of that architecture (llama, qwen2, gpt2, phi, gemma, gemma3),
    one per (arch, seed) for the whole test session."""
    made = {}

    def make(arch: str, seed: int = 0) -> Path:
        if (arch, seed) not in made:
            made[arch, seed] = save_tiny_llm(tmp_path_factory.mktemp("llm") / f"tiny-{arch}-{seed}", seed, arch)
        return made[arch, seed]

    return make


def write_set(root: Path, texts, seed, frames=(30, 60)):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    feats = {utt: rng.standard_normal((int(rng.integers(*frames)), FEAT_DIM)).astype(np.float32) for utt in texts}
    with kaldiio.WriteHelper(f"ark,scp:{root}/feats.ark,{root}/feats.scp") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    (root / "text").write_text("".join(f"{u} {texts[u]}\n" for u in sorted(texts)))
    (root / "speech_shape").write_text("".join(f"{u} {feats[u].shape[0]},{FEAT_DIM}\n" for u in sorted(feats)))
    return feats


@pytest.fixture(scope="session")
def make_data_dir():
    """make_data_dir(root, train_texts, valid_texts, frames=(lo, hi)) -> root with train/, valid/ (random
    FEAT_DIM-dim features, lengths in [lo, hi)) and their global CMVN feats_stats.npz."""
    def make(root: Path, train_texts, valid_texts, frames=(30, 60)) -> Path:
        train = write_set(root / "train", train_texts, 0, frames)
        write_set(root / "valid", valid_texts, 1, frames)
        stacked = np.concatenate(list(train.values()))
        np.savez(root / "feats_stats.npz", count=len(stacked), sum=stacked.sum(0), sum_square=(stacked**2).sum(0))
        return root
    return make


@pytest.fixture(scope="session")
def write_exp_dir():
    """write_exp_dir(exp, args, model) -> exp: config.yaml of `args` and the model's state as valid.acc.ave.pth, as
    ESPnet's trainer leaves an exp dir."""
    return _write_exp_dir


def _write_exp_dir(exp: Path, args, model) -> Path:
    from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

    exp.mkdir(parents=True, exist_ok=True)
    with open(exp / "config.yaml", "w") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return exp
