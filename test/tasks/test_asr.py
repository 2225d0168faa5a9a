"""espnet_llm.tasks.asr: ESPnet's ASRTask with the project's Whisper encoder among its encoder choices."""
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet_llm.tasks.asr import ASRTask

TINY_WHISPER = dict(num_mel_bins=80, d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
                    decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, vocab_size=100,
                    max_source_positions=1500)
TOKENS = ["<blank>", "<unk>", "A", "B", "C", "▁", "<sos/eos>"]


def config(tmp_path, **extra):
    conf = dict(
        frontend=None, input_size=1, normalize=None, specaug=None, encoder="hf_whisper",
        encoder_conf=dict(whisper_config=TINY_WHISPER, freeze=False), decoder="transformer",
        decoder_conf=dict(attention_heads=2, linear_units=16, num_blocks=1), model_conf=dict(ctc_weight=0.3),
        token_list=TOKENS, token_type="char", optim="adam", optim_conf=dict(lr=0.001), **extra)
    path = tmp_path / "train_asr_whisper_tiny.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def test_whisper_encoder_builds_inside_espnets_asr_task_from_yaml(tmp_path):
    args = ASRTask.get_parser().parse_args(["--config", str(config(tmp_path))])
    model = ASRTask.build_model(args)
    assert type(model.encoder).__name__ == "WhisperEncoder" and model.frontend is None
    speech = torch.randn(2, 16000)
    lengths = torch.tensor([16000, 12000])
    text = torch.tensor([[2, 3, 4], [3, 4, -1]])
    loss, stats, weight = model(speech, lengths, text, torch.tensor([3, 2]))
    assert torch.isfinite(loss) and "loss_ctc" in stats


def test_a_tiny_whisper_encoder_am_trains_one_step_and_decodes(tmp_path):
    from espnet2.bin.asr_inference import Speech2Text

    from espnet_llm.bin.asr_train import main as train_main

    rng = np.random.default_rng(0)
    for part, utts in (("train", ["u1", "u2"]), ("valid", ["v1"])):
        d = tmp_path / part
        d.mkdir()
        lines, texts, shapes = [], [], []
        for u in utts:
            sf.write(d / f"{u}.wav", rng.normal(0, 0.1, 8000).astype(np.float32), 16000)
            lines.append(f"{u} {d / (u + '.wav')}\n")
            texts.append(f"{u} A B C\n")
            shapes.append(f"{u} 8000\n")
        (d / "wav.scp").write_text("".join(lines))
        (d / "text").write_text("".join(texts))
        (d / "shape").write_text("".join(shapes))
    out = tmp_path / "exp"
    train_main([
        "--config", str(config(tmp_path)), "--output_dir", str(out), "--ngpu", "0", "--max_epoch", "1",
        "--batch_size", "2", "--use_matplotlib", "false", "--num_workers", "0", "--fold_length", "80000",
        "--train_data_path_and_name_and_type", f"{tmp_path}/train/wav.scp,speech,sound",
        "--train_data_path_and_name_and_type", f"{tmp_path}/train/text,text,text",
        "--valid_data_path_and_name_and_type", f"{tmp_path}/valid/wav.scp,speech,sound",
        "--valid_data_path_and_name_and_type", f"{tmp_path}/valid/text,text,text",
        "--train_shape_file", f"{tmp_path}/train/shape", "--valid_shape_file", f"{tmp_path}/valid/shape",
    ])
    assert (out / "1epoch.pth").is_file() and (out / "valid.acc.ave.pth").exists()
    s2t = Speech2Text(asr_train_config=str(out / "config.yaml"), asr_model_file=str(out / "valid.acc.ave.pth"),
                      beam_size=2, ctc_weight=0.3, maxlenratio=0.0)
    text, tokens, token_ids, hyp = s2t(rng.normal(0, 0.1, 8000).astype(np.float32))[0]
    assert isinstance(text, str) and all(t in TOKENS for t in tokens)


def test_encoder_lr_scale_gives_the_pretrained_encoder_its_own_learning_rate(tmp_path):
    args = ASRTask.get_parser().parse_args(["--config", str(config(tmp_path, encoder_lr_scale=0.1))])
    model = ASRTask.build_model(args)
    (optimizer,) = ASRTask.build_optimizers(args, model)
    rest, encoder = optimizer.param_groups
    assert rest["lr"] == pytest.approx(0.001) and encoder["lr"] == pytest.approx(0.0001)
    assert {id(p) for p in encoder["params"]} == {id(p) for p in model.encoder.parameters()}
    assert len(rest["params"]) + len(encoder["params"]) == len(list(model.parameters()))
    # scale 1: ESPnet's own single group
    plain = ASRTask.get_parser().parse_args(["--config", str(config(tmp_path))])
    assert len(ASRTask.build_optimizers(plain, model)[0].param_groups) == 1
