"""LLMASRTask through ESPnet's real argument parser, model builder, data pipeline and trainer."""
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
import yaml
from espnet2.schedulers.warmup_lr import WarmupLR
from espnet2.tasks.asr import ASRTask
from espnet2.torch_utils.load_pretrained_model import load_pretrained_model

from espnet_llm.asr.espnet_model import LLMPrefixASRModel
from espnet_llm.tasks.llm_asr import LLMASRTask, LLMTextPreprocessor, encoder_choices

CONF = Path(__file__).resolve().parents[2] / "egs" / "an4" / "asr1" / "conf" / "tuning"
FEAT_DIM = 8
TRAIN = {
    "fash-an251-b": "YES NO",
    "fash-an252-b": "ONE TWO THREE",
    "fash-an253-b": "FOUR FIVE",
    "fash-an254-b": "SIX SEVEN EIGHT NINE",
    "mgah-an255-b": "ZERO ENTER",
    "mgah-an256-b": "HELP REPEAT STOP",
}
VALID = {"mmxg-an257-b": "GO ERASE", "mmxg-an258-b": "RUBOUT YES"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, make_data_dir):
    return make_data_dir(tmp_path_factory.mktemp("data"), TRAIN, VALID)


def common_args(llm_dir, data_dir):
    return [
        "--input_size", str(FEAT_DIM),
        "--llm_conf", f"name_or_path={llm_dir}",
        "--normalize_conf", f"stats_file={data_dir}/feats_stats.npz",
    ]


def parse(config, llm_dir, data_dir, *extra):
    parser = LLMASRTask.get_parser()
    return parser.parse_args(["--config", str(config), *common_args(llm_dir, data_dir), *extra])


def test_whisper_encoder_is_registered():
    assert encoder_choices.get_class("whisper").__module__ == "espnet_llm.asr.encoder.whisper_encoder"
    assert encoder_choices.get_class("conformer").__name__ == "ConformerEncoder"


@pytest.mark.parametrize(
    "name, trainable_llm",
    [("train_llm_asr_conformer_lora_stride80.yaml", "lora"), ("train_llm_asr_conformer_frozen_stride80.yaml", None),
     ("train_llm_asr_tiny.yaml", "lora")],
)
def test_build_model_from_recipe_configs(tiny_llm_dir, data_dir, name, trainable_llm):
    args = parse(CONF / name, tiny_llm_dir, data_dir)
    model = LLMASRTask.build_model(args)
    assert isinstance(model, LLMPrefixASRModel)
    # stride_ms 80 over a conv2d encoder (4 x 10 ms): 2 frames per embedding, recorded for config.yaml
    assert args.projector_conf["input_frame_shift_ms"] == 40.0
    assert model.projector.output_stride() == 2
    assert model.projector.output_size() == 16  # the tiny LLM's hidden size
    assert model.ctc is not None and model.ctc.ctc_lo.out_features == model.llm.get_input_embeddings().num_embeddings
    llm_trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    if trainable_llm is None:
        assert llm_trainable == []
    else:
        assert llm_trainable and all("lora_" in n for n in llm_trainable)
    assert model.eos_id == 0


@pytest.mark.parametrize("name", ["train_llm_asr_conformer_lora_stride80.yaml", "train_llm_asr_conformer_frozen_stride80.yaml",
                                  "train_llm_asr_conformer_ft_lora_stride80.yaml"])
def test_recipe_encoder_matches_baseline_am(name):
    """--init_param <am>.pth:encoder:encoder needs the same encoder as the baseline's config."""
    ours = yaml.safe_load((CONF / name).read_text())
    baseline = yaml.safe_load((CONF / "train_asr_conformer.yaml").read_text())
    for key in ("frontend", "normalize", "encoder", "encoder_conf"):
        assert ours[key] == baseline[key], key


def test_preprocessor_lowercases_and_uses_llm_tokenizer(tiny_llm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llm_dir))
    lower = LLMTextPreprocessor(train=True, llm_dir=str(tiny_llm_dir), text_lowercase=True)
    keep = LLMTextPreprocessor(train=True, llm_dir=str(tiny_llm_dir), text_lowercase=False)
    speech = np.zeros((5, FEAT_DIM), dtype=np.float32)
    out = lower("utt", {"speech": speech, "text": "YES NO"})
    assert out["text"].tolist() == tokenizer("yes no", add_special_tokens=False)["input_ids"]
    assert tokenizer.eos_token_id not in out["text"].tolist()  # the model appends EOS, not the preprocessor
    assert keep("utt", {"speech": speech, "text": "YES NO"})["text"].tolist() == tokenizer(
        "YES NO", add_special_tokens=False)["input_ids"]
    with pytest.raises(FileNotFoundError, match="missing-llm"):
        LLMTextPreprocessor(train=True, llm_dir="missing-llm")


def test_audio_augmentation_is_espnets_preprocessor_and_applies_to_training_only(tiny_llm_dir, data_dir, tmp_path):
    """``preprocessor_conf.data_aug_effects`` (espnet2.layers.augmentation) and ``rir_scp`` reach CommonPreprocessor."""
    import soundfile

    rir = np.zeros(800, dtype=np.float32)
    rir[0], rir[400] = 1.0, 0.5  # a direct path and one echo 25 ms later
    soundfile.write(tmp_path / "rir.wav", rir, 16000)
    (tmp_path / "rir.scp").write_text(f"r1 {tmp_path / 'rir.wav'}\n", encoding="utf-8")
    args = parse(
        CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir,
        "--preprocessor_conf", "data_aug_effects=[[1.0, speed_perturb, {factor: 1.25}]]",
        "--preprocessor_conf", "data_aug_prob=1.0",
        "--rir_scp", str(tmp_path / "rir.scp"),
    )
    assert args.preprocessor_conf["data_aug_effects"] == [[1.0, "speed_perturb", {"factor": 1.25}]]
    rng = np.random.default_rng(0)
    speech = rng.standard_normal(16000).astype(np.float32) * 0.1
    train_fn = LLMASRTask.build_preprocess_fn(args, train=True)
    valid_fn = LLMASRTask.build_preprocess_fn(args, train=False)
    out = train_fn("utt", {"speech": speech.copy(), "text": "YES NO"})
    assert out["speech"].shape == (12800,)  # 1.25x faster
    assert valid_fn("utt", {"speech": speech.copy(), "text": "YES NO"})["speech"].tolist() == speech.tolist()
    assert out["text"].tolist() == valid_fn("utt", {"speech": speech, "text": "YES NO"})["text"].tolist()
    # the RIR alone: same length, mono, the echo added
    args = parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir, "--rir_scp", str(tmp_path / "rir.scp"))
    reverb = LLMASRTask.build_preprocess_fn(args, train=True)("utt", {"speech": speech.copy(), "text": "YES"})["speech"]
    assert reverb.shape == speech.shape and not np.allclose(reverb, speech)
    assert np.corrcoef(reverb[400:], speech[:-400])[0, 1] > 0.2  # the echo: a delayed copy


def test_init_param_loads_baseline_encoder(tiny_llm_dir, data_dir, tmp_path):
    """ESPnet's --init_param <am>.pth:encoder:encoder fills our encoder from an ESPnetASRModel checkpoint."""
    tiny = yaml.safe_load((CONF / "train_llm_asr_tiny.yaml").read_text())
    am_args = ASRTask.get_parser().parse_args([
        "--input_size", str(FEAT_DIM), "--token_list", "<blank>,a,b,<sos/eos>", "--encoder", "transformer",
        "--decoder", "transformer", "--normalize", "global_mvn",
        "--normalize_conf", f"stats_file={data_dir}/feats_stats.npz",
    ])
    am_args.token_list = ["<blank>", "a", "b", "<sos/eos>"]
    am_args.encoder_conf = tiny["encoder_conf"]
    am_args.decoder_conf = dict(attention_heads=2, linear_units=16, num_blocks=1)
    torch.manual_seed(7)
    am = ASRTask.build_model(am_args)
    torch.save(am.state_dict(), tmp_path / "am.pth")

    model = LLMASRTask.build_model(parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir))
    assert not torch.equal(model.encoder.embed.conv[0].weight, am.encoder.embed.conv[0].weight)
    load_pretrained_model(f"{tmp_path}/am.pth:encoder:encoder", model, ignore_init_mismatch=False)
    for (name, ours), (_, theirs) in zip(model.encoder.state_dict().items(), am.encoder.state_dict().items()):
        assert torch.equal(ours, theirs), name


def test_init_param_loads_a_whole_first_stage_speech_llm(tiny_llm_dir, data_dir, tmp_path):
    """Two-stage training: --init_param <stage-1 model>.pth (no keys) starts from a speech LLM's checkpoint, which
    leaves out the frozen LLM weights: those stay the LLM directory's, everything saved is loaded."""
    torch.manual_seed(1)
    first = LLMASRTask.build_model(parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir))
    with torch.no_grad():
        for p in first.parameters():
            if p.requires_grad:
                p.add_(0.5)  # "trained": differs from any fresh build
    torch.save(first.state_dict(), tmp_path / "stage1.pth")
    saved = torch.load(tmp_path / "stage1.pth")
    assert not any(k.startswith("llm.") and "lora_" not in k for k in saved)

    torch.manual_seed(2)
    second = LLMASRTask.build_model(parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir,
                                          "--model_conf", "freeze_encoder=false"))
    load_pretrained_model(str(tmp_path / "stage1.pth"), second, ignore_init_mismatch=False)
    ours, theirs = second.state_dict(), first.state_dict()
    assert ours.keys() == theirs.keys()
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], check_dtype=False, msg=lambda m: f"{key}: {m}")
    assert all(p.requires_grad for p in second.encoder.parameters())  # the second stage trains the encoder

def first_model_and_vocabularies(tiny_llm_dir, data_dir, tmp_path):
    """A first-stage model saved as stage1.pth with the CTC vocabulary of a small text, and that of a larger text."""
    from espnet_llm.bin.llm_ctc_vocab import main as ctc_vocab_main

    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    (tmp_path / "small_text").write_text("u1 ONE TWO\n")
    (tmp_path / "big_text").write_text("u1 ONE TWO\nu2 HE WAS NOT AN ILL DISPOSED YOUNG MAN\n")
    for text, vocab in ((tmp_path / "small_text", small), (tmp_path / "big_text", big)):
        assert ctc_vocab_main(["--llm_dir", str(tiny_llm_dir), "--text_lowercase", "true",
                               "--text", str(text), "--out", str(vocab)]) == 0
    torch.manual_seed(1)
    first = LLMASRTask.build_model(parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir,
                                         "--ctc_vocab", str(small)))
    torch.save(first.state_dict(), tmp_path / "stage1.pth")
    return first, small, big


def test_init_param_can_leave_out_the_ctc_head_of_another_vocabulary(tiny_llm_dir, data_dir, tmp_path):
    """Training on more text (e.g. + synthetic speech) grows the SubsetCTC vocabulary: <stage-1 model>:::ctc (ESPnet's
    exclude field, what --llm_init_model passes) loads everything but the CTC head, which the new vocabulary resizes."""
    first, small, big = first_model_and_vocabularies(tiny_llm_dir, data_dir, tmp_path)
    torch.manual_seed(2)
    second = LLMASRTask.build_model(parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir,
                                          "--ctc_vocab", str(big)))
    fresh_ctc = second.ctc.ctc_lo.weight.detach().clone()
    assert fresh_ctc.shape[0] > first.ctc.ctc_lo.weight.shape[0]
    with pytest.raises(RuntimeError, match="size mismatch"):  # the whole model: the CTC head does not fit
        load_pretrained_model(str(tmp_path / "stage1.pth"), second, ignore_init_mismatch=False)
    load_pretrained_model(f"{tmp_path / 'stage1.pth'}:::ctc", second, ignore_init_mismatch=False)
    ours, theirs = second.state_dict(), first.state_dict()
    for key in theirs:
        if key.startswith("ctc."):
            continue
        torch.testing.assert_close(ours[key], theirs[key], check_dtype=False, msg=lambda m: f"{key}: {m}")
    assert torch.equal(second.ctc.ctc_lo.weight, fresh_ctc)  # left as built


def test_a_remapped_ctc_head_loads_whole_and_scores_as_the_first_model(tiny_llm_dir, data_dir, tmp_path):
    """What stage 9 does instead of :::ctc: espnet_llm.bin.llm_ctc_remap moves the trained head onto the larger
    vocabulary, so the whole model loads and its CTC scores every LLM id as the first model did."""
    from espnet_llm.bin.llm_ctc_remap import main as remap_main

    first, small, big = first_model_and_vocabularies(tiny_llm_dir, data_dir, tmp_path)
    assert remap_main(["--model", str(tmp_path / "stage1.pth"), "--old_vocab", str(small), "--new_vocab", str(big),
                       "--llm_dir", str(tiny_llm_dir), "--out", str(tmp_path / "remapped.pth")]) == 0
    torch.manual_seed(2)
    second = LLMASRTask.build_model(parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir,
                                          "--ctc_vocab", str(big)))
    load_pretrained_model(str(tmp_path / "remapped.pth"), second, ignore_init_mismatch=False)
    hs = torch.randn(1, 5, first.ctc.ctc_lo.in_features)
    assert second.ctc.ctc_lo.out_features > first.ctc.ctc_lo.out_features
    torch.testing.assert_close(second.ctc.log_softmax(hs), first.ctc.log_softmax(hs), atol=1e-5, rtol=0)


def train_cmd(llm_dir, data_dir, out_dir, max_epoch):
    d = data_dir
    return [
        "--config", str(CONF / "train_llm_asr_tiny.yaml"), *common_args(llm_dir, data_dir),
        "--train_data_path_and_name_and_type", f"{d}/train/feats.scp,speech,kaldi_ark",
        "--train_data_path_and_name_and_type", f"{d}/train/text,text,text",
        "--valid_data_path_and_name_and_type", f"{d}/valid/feats.scp,speech,kaldi_ark",
        "--valid_data_path_and_name_and_type", f"{d}/valid/text,text,text",
        "--train_shape_file", f"{d}/train/speech_shape", "--valid_shape_file", f"{d}/valid/speech_shape",
        "--batch_type", "unsorted", "--batch_size", "2",
        "--output_dir", str(out_dir), "--ngpu", "0", "--max_epoch", str(max_epoch), "--resume", "true",
        "--use_matplotlib", "false",
    ]


def test_train_with_espnet_trainer_small_checkpoint_and_resume(tiny_llm_dir, data_dir, tmp_path):
    out = tmp_path / "exp" / "llm_asr_tiny"
    LLMASRTask.main(cmd=train_cmd(tiny_llm_dir, data_dir, out, 1))

    assert (out / "1epoch.pth").is_file() and (out / "checkpoint.pth").is_file()
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["projector_conf"]["input_frame_shift_ms"] == 40.0
    state = torch.load(out / "1epoch.pth", map_location="cpu")
    llm_keys = [k for k in state if k.startswith("llm.")]
    assert llm_keys and all("lora_" in k for k in llm_keys)  # frozen base weights are not saved
    assert any(k.startswith("encoder.") for k in state) and any(k.startswith("projector.") for k in state)
    assert "normalize.mean" in state and "ctc.ctc_lo.weight" in state
    llm_bytes = (tiny_llm_dir / "model.safetensors").stat().st_size
    saved = sum(v.numel() * v.element_size() for k, v in state.items() if k.startswith("llm."))
    assert saved < 0.1 * llm_bytes

    first = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert first["reporter"]["epoch"] == 1

    # resume: epoch 1 is not re-run, epoch 2 starts from the saved state
    LLMASRTask.main(cmd=train_cmd(tiny_llm_dir, data_dir, out, 2))
    assert (out / "2epoch.pth").is_file()
    assert (out / "valid.acc.ave.pth").exists()  # ESPnet's n-best averaging ran on the small state dicts
    second = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert second["reporter"]["epoch"] == 2
    assert sorted(second["reporter"]["stats"]) == [1, 2]
    torch.testing.assert_close(second["reporter"]["stats"][1]["valid"]["acc"], first["reporter"]["stats"][1]["valid"]["acc"])

    # the saved model rebuilds from config.yaml + the LLM directory and reproduces the trained outputs
    model, _ = LLMASRTask.build_model_from_file(out / "config.yaml", out / "2epoch.pth", "cpu")
    final = torch.load(out / "2epoch.pth", map_location="cpu")
    for key, value in final.items():  # GlobalMVN keeps float64 stats until its first forward: values only
        torch.testing.assert_close(model.state_dict()[key], value, check_dtype=False, msg=lambda m: f"{key}: {m}")
    model.eval()
    feats = kaldiio.load_scp(str(data_dir / "valid" / "feats.scp"))
    speech = torch.from_numpy(feats["mmxg-an257-b"])[None]
    lengths = torch.tensor([speech.shape[1]])
    again, _ = LLMASRTask.build_model_from_file(out / "config.yaml", out / "2epoch.pth", "cpu")
    again.eval()
    with torch.no_grad():
        prefix, prefix_lengths = model.build_prefix(speech, lengths)
        prefix2, _ = again.build_prefix(speech, lengths)
        torch.testing.assert_close(prefix2, prefix)
        torch.testing.assert_close(again.llm(inputs_embeds=prefix2).logits, model.llm(inputs_embeds=prefix).logits)


def test_collect_stats_writes_llm_token_shapes(tiny_llm_dir, data_dir, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "stats"
    cmd = train_cmd(tiny_llm_dir, data_dir, out, 1) + ["--collect_stats", "true", "--normalize", "none"]
    LLMASRTask.main(cmd=cmd)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llm_dir))
    shapes = dict(line.split() for line in (out / "train" / "text_shape").read_text().splitlines())
    assert shapes["fash-an251-b"] == str(len(tokenizer("yes no", add_special_tokens=False)["input_ids"]))
    assert (out / "train" / "feats_stats.npz").is_file()


def test_ctc_vocab_builds_a_subset_ctc_head_that_trains_and_reloads(tiny_llm_dir, data_dir, tmp_path):
    from espnet_llm.asr.ctc import SubsetCTC
    from espnet_llm.bin.llm_ctc_vocab import main as ctc_vocab_main

    vocab = tmp_path / "ctc_vocab.txt"
    assert ctc_vocab_main(["--llm_dir", str(tiny_llm_dir), "--text_lowercase", "true",
                           "--text", str(data_dir / "train" / "text"), "--out", str(vocab)]) == 0
    args = parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir, "--ctc_vocab", str(vocab))
    model = LLMASRTask.build_model(args)
    assert isinstance(model.ctc, SubsetCTC)
    n_ids = len(vocab.read_text().splitlines())
    assert model.ctc.ctc_lo.out_features == n_ids + 2
    pre = LLMTextPreprocessor(train=True, llm_dir=str(tiny_llm_dir), text_lowercase=True)
    ids = torch.tensor(pre("u", {"text": "ONE TWO THREE"})["text"])[None]
    speech = torch.randn(1, 40, FEAT_DIM)
    loss, stats, _ = model(speech, torch.tensor([40]), ids, torch.tensor([ids.shape[1]]))
    loss.backward()
    assert torch.isfinite(stats["loss_ctc"]) and model.ctc.ctc_lo.weight.grad is not None
    again = LLMASRTask.build_model(args)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.ctc.ctc_lo.weight, model.ctc.ctc_lo.weight)


def test_encoder_lr_scale_gives_the_encoder_its_own_learning_rate(tiny_llm_dir, data_dir):
    args = parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir, "--encoder_lr_scale", "0.1",
                 "--optim", "adam", "--optim_conf", "lr=0.002", "--scheduler", "warmuplr",
                 "--scheduler_conf", "warmup_steps=10", "--model_conf", "freeze_encoder=false")
    model = LLMASRTask.build_model(args)
    [optim] = LLMASRTask.build_optimizers(args, model)
    other, encoder = optim.param_groups
    assert {id(p) for p in encoder["params"]} == {id(p) for p in model.encoder.parameters()}
    assert len(other["params"]) + len(encoder["params"]) == len(list(model.parameters()))
    assert other["lr"] == pytest.approx(0.002) and encoder["lr"] == pytest.approx(0.0002)
    # ESPnet's warmup scheduler scales each group's own base lr: the ratio holds at every step
    scheduler = WarmupLR(optim, warmup_steps=10)
    for _ in range(3):
        optim.step()
        scheduler.step()
        assert encoder["lr"] == pytest.approx(0.1 * other["lr"]) and 0 < other["lr"] < 0.002

    default = LLMASRTask.build_optimizers(parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir), model)
    assert len(default[0].param_groups) == 1  # scale 1: ESPnet's own optimizer, unchanged
    with pytest.raises(ValueError, match="encoder_lr_scale must be > 0"):
        LLMASRTask.build_optimizers(
            parse(CONF / "train_llm_asr_tiny.yaml", tiny_llm_dir, data_dir, "--encoder_lr_scale", "0"), model)
