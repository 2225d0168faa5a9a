"""Tiny real models and data for the benchmarks' --smoke mode (no download; seconds to build).

    build(root) -> dict(llm=<HF dir>, unit_llm=<HF dir on the AM's units>, am_exp=<ESPnet ASR exp dir>,
                        llm_exp=<speech LLM exp dir>, feats=<feats.scp>, text=<Kaldi text>, config=<train YAML>,
                        task_args=[...])

The LLM is a 1-layer Llama with a byte-level BPE tokenizer (as test/conftest.py builds); the AM a 1-block
transformer CTC/attention ESPnet model on a 20-piece BPE; the speech LLM egs/an4/asr1/conf/tuning/
train_llm_asr_tiny.yaml over 8-dim features. Weights are random: the benchmarks measure cost, not accuracy.
"""
from pathlib import Path

import kaldiio
import numpy as np
import torch
import yaml

FEAT_DIM = 8
WORDS = "yes no rubout one two three four five six seven eight nine zero enter erase stop go help repeat start"
TEXTS = {"spk-u0": "YES NO ONE", "spk-u1": "TWO THREE", "spk-u2": "FOUR FIVE SIX", "spk-u3": "STOP GO HELP"}
RECIPE_CONF = Path(__file__).resolve().parents[1] / "egs" / "an4" / "asr1" / "conf" / "tuning"


def save_llm(path: Path, vocab_tokens=None, bos_eos: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = None
    if vocab_tokens is None:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator([WORDS] * 20, trainer)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
        vocab_tokens = len(tokenizer)
    config = LlamaConfig(vocab_size=vocab_tokens, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=bos_eos, eos_token_id=bos_eos, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(path))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))
    return path


def write_feats(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    feats = {u: rng.standard_normal((int(rng.integers(40, 64)), FEAT_DIM)).astype(np.float32) for u in TEXTS}
    with kaldiio.WriteHelper(f"ark,scp:{root}/feats.ark,{root}/feats.scp") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    (root / "text").write_text("".join(f"{u} {TEXTS[u]}\n" for u in sorted(TEXTS)))
    stacked = np.concatenate(list(feats.values()))
    np.savez(root / "feats_stats.npz", count=len(stacked), sum=stacked.sum(0), sum_square=(stacked**2).sum(0))
    return root / "feats.scp"


def save_am(root: Path) -> Path:
    from espnet2.tasks.asr import ASRTask
    from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

    from espnet_llm.bin import tokenizer_train

    text = root / "am_text"
    text.write_text("".join(f"u{i} {t}\n" for i, t in enumerate(list(TEXTS.values()) * 5)))
    tokenizer_train.main(["--text", str(text), "--token_type", "bpe", "--nbpe", "20", "--out_dir", str(root / "bpe")])
    exp = root / "asr_tiny"
    args = ASRTask.get_parser().parse_args([
        "--output_dir", str(exp), "--input_size", str(FEAT_DIM), "--normalize", "none", "--token_type", "bpe",
        "--token_list", str(root / "bpe" / "tokens.txt"), "--bpemodel", str(root / "bpe" / "bpe.model"),
        "--encoder", "transformer", "--encoder_conf", "output_size=16", "--encoder_conf", "attention_heads=2",
        "--encoder_conf", "linear_units=16", "--encoder_conf", "num_blocks=1", "--decoder", "transformer",
        "--decoder_conf", "attention_heads=2", "--decoder_conf", "linear_units=16", "--decoder_conf", "num_blocks=1",
        "--model_conf", "ctc_weight=0.3",
    ])
    args.frontend = None
    torch.manual_seed(0)
    model = ASRTask.build_model(args)
    exp.mkdir(parents=True)
    with open(exp / "config.yaml", "w") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return exp


def save_speech_llm(root: Path, llm: Path, stats: Path) -> tuple:
    from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

    from espnet_llm.tasks.llm_asr import LLMASRTask

    config = RECIPE_CONF / "train_llm_asr_tiny.yaml"
    task_args = ["--input_size", str(FEAT_DIM), "--normalize_conf", f"stats_file={stats}"]
    args = LLMASRTask.get_parser().parse_args(["--config", str(config), "--llm_conf", f"name_or_path={llm}",
                                               *task_args])
    torch.manual_seed(0)
    model = LLMASRTask.build_model(args)
    exp = root / "llm_asr_tiny"
    exp.mkdir(parents=True)
    with open(exp / "config.yaml", "w") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return exp, config, task_args


def build(root: Path) -> dict:
    from espnet_llm.bin.llm_text_train import read_token_list

    root = Path(root)
    feats = write_feats(root / "data")
    llm = save_llm(root / "tiny_llm")
    am_exp = save_am(root)
    token_list = read_token_list(str(root / "bpe" / "tokens.txt"))
    unit_llm = save_llm(root / "unit_llm", vocab_tokens=len(token_list), bos_eos=len(token_list) - 1)
    llm_exp, config, task_args = save_speech_llm(root, llm, root / "data" / "feats_stats.npz")
    assert yaml.safe_load((llm_exp / "config.yaml").read_text())["llm_conf"]["name_or_path"] == str(llm)
    return dict(llm=llm, unit_llm=unit_llm, am_exp=am_exp, llm_exp=llm_exp, feats=feats, text=root / "data" / "text",
                config=config, task_args=task_args)
