"""espnet_llm.bin.analysis_plot on a tiny speech LLM trained for 2 epochs by ESPnet's trainer (LLMASRTask.main)."""
import logging
from pathlib import Path

import kaldiio
import numpy as np
import pytest
from transformers import AutoTokenizer

from espnet_llm.bin import analysis_plot
from espnet_llm.tasks.llm_asr import LLMASRTask

CONF = Path(__file__).resolve().parents[2] / "egs" / "an4" / "asr1" / "conf" / "tuning"
FEAT_DIM = 8
TRAIN = {"fash-an251-b": "YES NO", "fash-an252-b": "ONE TWO THREE", "fash-an253-b": "FOUR FIVE",
         "mgah-an255-b": "ZERO ENTER"}
VALID = {"mmxg-an257-b": "GO ERASE STOP", "mmxg-an258-b": "RUBOUT YES"}


@pytest.fixture(scope="module")
def exp_dir(tiny_llm_dir, tmp_path_factory, make_data_dir):
    """exp/llm_asr_tiny trained 2 epochs, with ESPnet's log in train.log as run.pl would write it."""
    root = make_data_dir(tmp_path_factory.mktemp("analysis"), TRAIN, VALID, frames=(40, 64))
    out = root / "exp" / "llm_asr_tiny"
    out.mkdir(parents=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("[vm] %(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"))
    root_logger, level = logging.getLogger(), logging.getLogger().level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    try:
        LLMASRTask.main(cmd=[
            "--config", str(CONF / "train_llm_asr_tiny.yaml"), "--input_size", str(FEAT_DIM),
            "--llm_conf", f"name_or_path={tiny_llm_dir}", "--normalize_conf", f"stats_file={root}/feats_stats.npz",
            "--model_conf", "prompt=transcribe this",
            "--train_data_path_and_name_and_type", f"{root}/train/feats.scp,speech,kaldi_ark",
            "--train_data_path_and_name_and_type", f"{root}/train/text,text,text",
            "--valid_data_path_and_name_and_type", f"{root}/valid/feats.scp,speech,kaldi_ark",
            "--valid_data_path_and_name_and_type", f"{root}/valid/text,text,text",
            "--train_shape_file", f"{root}/train/speech_shape", "--valid_shape_file", f"{root}/valid/speech_shape",
            "--batch_type", "unsorted", "--batch_size", "2", "--output_dir", str(out), "--ngpu", "0",
            "--max_epoch", "2", "--use_matplotlib", "false",
        ])
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(level)
        handler.close()
    return out


def test_plots_of_a_trained_exp_dir(exp_dir, tiny_llm_dir, capsys):
    data = exp_dir.parents[1] / "valid"
    assert analysis_plot.main([
        "--exp_dir", str(exp_dir), "--data_path_and_name_and_type", f"{data}/feats.scp,speech,kaldi_ark",
        "--text", str(data / "text"), "--utts", "mmxg-an257-b", "--layers", "0", "-1", "--heads", "0", "mean",
    ]) == 0
    out = exp_dir / "analysis"
    printed = capsys.readouterr().out.split()
    names = ["curves.png", "cosine_mmxg-an257-b.png", "attention_mmxg-an257-b.png"]
    assert sorted(printed) == sorted(str(out / n) for n in names)
    for name in names:
        content = (out / name).read_bytes()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 5000, name

    # cosine matrix: one row per projected frame (stride 80 ms = 2 frames of the 40 ms encoder), one column per token
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llm_dir))
    n_tokens = len(tokenizer("go erase stop", add_special_tokens=False)["input_ids"])
    n_frames = int(kaldiio.load_scp(str(data / "feats.scp"))["mmxg-an257-b"].shape[0])
    model, _, _ = analysis_plot.load_model(exp_dir)
    import torch
    with torch.no_grad():
        enc, enc_lens = model.encode_frames(torch.zeros(1, n_frames, FEAT_DIM), torch.tensor([n_frames]))
    matrix = np.load(out / "cosine_mmxg-an257-b.npy")
    assert matrix.shape == (int(enc_lens[0]) // 2, n_tokens)
    assert np.all(np.abs(matrix) <= 1.0 + 1e-5) and np.isfinite(matrix).all()


def test_attention_covers_prompt_audio_and_text(exp_dir, tiny_llm_dir):
    import torch

    model, tokenizer, args = analysis_plot.load_model(exp_dir)
    feats = torch.tensor(kaldiio.load_scp(str(exp_dir.parents[1] / "valid" / "feats.scp"))["mmxg-an258-b"])
    ids = analysis_plot.transcript_ids(tokenizer, "RUBOUT YES", args.text_lowercase)
    assert ids == tokenizer("rubout yes", add_special_tokens=False)["input_ids"]
    maps, segments = analysis_plot.attention_maps(model, feats, ids)
    prompt = len(tokenizer("transcribe this", add_special_tokens=False)["input_ids"])
    assert segments == dict(prompt=prompt, audio=analysis_plot.cosine_matrix(model, feats, ids).shape[0],
                            text=len(ids) + 1)
    length = sum(segments.values())
    assert len(maps) == 1 and maps[0].shape == (2, length, length)  # 1 layer, 2 heads
    np.testing.assert_allclose(maps[0].sum(-1), 1.0, rtol=1e-4)  # softmax rows
    assert np.all(np.triu(maps[0][0], k=1) == 0.0)  # causal


def test_curves_from_the_epoch_results_lines(exp_dir, tmp_path):
    from espnet_llm.trainlog import read_epoch_results

    epochs = read_epoch_results(exp_dir)
    assert list(epochs) == [1, 2]
    assert {"loss", "acc", "time"} <= set(epochs[2]["train"]) and "acc" in epochs[2]["valid"]
    empty = tmp_path / "no_log"
    empty.mkdir()
    assert analysis_plot.plot_curves(empty, tmp_path / "c.png") is None
