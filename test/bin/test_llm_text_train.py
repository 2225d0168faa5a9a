"""Tests of espnet_llm.bin.llm_text_train: LoRA and shared-unit fine-tuning of the tiny Llama on transcripts."""

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from espnet_llm.bin import tokenizer_train
from espnet_llm.bin.llm_text_train import collate, main, read_kaldi_text, read_token_list
from espnet_llm.decode.fusion import LLMTextScorer

WORDS = "YES NO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE ZERO ENTER ERASE STOP GO".split()


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "text"
    lines = [f"spk-u{i:03d} " + " ".join(rng.choice(WORDS[:6]) for _ in range(rng.randint(2, 4))) for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_kaldi_text_and_collate(tmp_path):
    path = tmp_path / "text"
    path.write_text("a-1 HELLO   WORLD\na-2\na-3 YES\n")
    assert read_kaldi_text([str(path)]) == ["HELLO WORLD", "YES"]
    batch = collate([{"input_ids": [0, 5, 6, 0]}, {"input_ids": [0, 7, 0]}], pad_id=0)
    assert batch["input_ids"].tolist() == [[0, 5, 6, 0], [0, 7, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 5, 6, 0], [-100, 7, 0, -100]]


def test_text_that_is_not_utf8_is_named_with_file_and_line(tmp_path):
    from espnet_llm.datadir import DataDirError

    (tmp_path / "text").write_bytes("u1 HELLO\nu2 CAF\xc9 NOIR\n".encode("latin-1"))
    with pytest.raises(DataDirError, match=f"{tmp_path / 'text'} line 2: not valid UTF-8 \\(byte 0xc9 at column 7\\)"):
        read_kaldi_text([str(tmp_path / "text")])


def test_lora_on_llm_tokens_lowers_the_loss_and_saves_a_loadable_model(tiny_llm_dir, text_file, tmp_path):
    out = tmp_path / "llm_text"
    main(["--llm", str(tiny_llm_dir), "--text", str(text_file), "--out_dir", str(out), "--max_steps", "12",
          "--batch_size", "8", "--lr", "0.05", "--lora_r", "4"])
    steps = [line.split("\t") for line in (out / "train_log.tsv").read_text().splitlines()[1:]]
    losses = [float(loss) for _, loss in steps]
    assert len(losses) == 12 and all(l == l for l in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    assert not (out / "trainer").exists() and not (out / "adapter_config.json").exists()
    llm = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True).eval()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llm_dir), local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    seen = "yes no one"  # lower-cased training text
    tuned, untuned = LLMTextScorer(llm, tok).sentence_logp(seen), LLMTextScorer(base, tok).sentence_logp(seen)
    assert tuned > untuned + 1.0
    # meta.json: what was trained and how long; a rerun with the same options keeps the model (and the fusion
    # decodings made with it), other options train again
    import json

    meta = json.loads((out / "meta.json").read_text())
    assert meta["trainable_params"] > 0 and meta["train_wall_s"] > 0 and meta["options"]["max_steps"] == 12
    assert (out / ".done").is_file()
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    main(["--llm", str(tiny_llm_dir), "--text", str(text_file), "--out_dir", str(out), "--max_steps", "12",
          "--batch_size", "8", "--lr", "0.05", "--lora_r", "4"])
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    main(["--llm", str(tiny_llm_dir), "--text", str(text_file), "--out_dir", str(out), "--max_steps", "2",
          "--batch_size", "8", "--lr", "0.05", "--lora_r", "4"])
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp
    assert json.loads((out / "meta.json").read_text())["options"]["max_steps"] == 2


def test_shared_units_resize_to_the_am_token_list(tiny_llm_dir, text_file, tmp_path):
    units = tmp_path / "bpe"
    tokenizer_train.main(["--text", str(text_file), "--token_type", "bpe", "--nbpe", "20", "--out_dir", str(units)])
    token_list = read_token_list(str(units / "tokens.txt"))
    out = tmp_path / "llm_text_bpe"
    main(["--llm", str(tiny_llm_dir), "--text", str(text_file), "--out_dir", str(out), "--units", "am",
          "--token_list", str(units / "tokens.txt"), "--bpemodel", str(units / "bpe.model"),
          "--max_steps", "10", "--batch_size", "8", "--lr", "0.01"])
    losses = [float(l.split("\t")[1]) for l in (out / "train_log.tsv").read_text().splitlines()[1:]]
    assert losses[-1] < losses[0]
    llm = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    sos_eos = len(token_list) - 1
    assert llm.get_input_embeddings().weight.shape[0] == len(token_list)
    assert llm.get_output_embeddings().weight.shape[0] == len(token_list)
    assert (llm.config.bos_token_id, llm.config.eos_token_id) == (sos_eos, sos_eos)
    assert read_token_list(str(out / "tokens.txt")) == token_list and (out / "bpe.model").is_file()
    with torch.no_grad():
        logits = llm(input_ids=torch.tensor([[sos_eos]])).logits[0, -1]
    assert logits.shape == (len(token_list),) and torch.isfinite(logits).all()


def test_a_diverged_training_is_an_error_and_writes_nothing(tiny_llm_dir, text_file, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken-llm"
    shutil.copytree(tiny_llm_dir, broken)
    weights = load_file(broken / "model.safetensors")
    name = next(n for n in weights if "q_proj" in n)
    weights[name][0, 0] = float("nan")  # one NaN weight: NaN loss, NaN gradients, NaN everywhere after a step
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "llm_text"
    with pytest.raises(RuntimeError, match="training diverged"):
        main(["--llm", str(broken), "--text", str(text_file), "--out_dir", str(out), "--tuning", "full",
              "--max_steps", "2", "--batch_size", "8"])
    assert not out.exists() or not any(out.iterdir())


def test_another_llm_under_the_same_path_trains_again(make_tiny_llm, text_file, tmp_path):
    import shutil

    llm_dir = tmp_path / "llm"
    shutil.copytree(make_tiny_llm("llama", seed=0), llm_dir)
    out = tmp_path / "llm_text"
    args = ["--llm", str(llm_dir), "--text", str(text_file), "--out_dir", str(out), "--max_steps", "2",
            "--batch_size", "8", "--lora_r", "4"]
    main(args)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    shutil.rmtree(llm_dir)
    shutil.copytree(make_tiny_llm("llama", seed=1), llm_dir)  # the path re-pointed at another LLM
    main(args)
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp
