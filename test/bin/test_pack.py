"""Packed models (espnet_llm.bin.pack, espnet_llm.packing) and transcribe() (espnet_llm.inference), end to end.

A tiny recipe dir holds what the recipe would: exp/llm/<LLM>, exp/whisper/<encoder>, exp/asr_stats/.../feats_stats.npz,
data/token_list/bpe20, and three trained-like systems whose configs name those paths relative to the recipe dir: a
Whisper-input speech LLM (raw audio, LoRA, CTC head over ctc_vocab.txt), an fbank-input speech LLM (global CMVN) and
an ESPnet ASRTask AM (fbank, BPE). Each is packed, then loaded from another directory and made to transcribe a
44.1 kHz stereo FLAC and an int16 array of the same speech; the text must be what the exp dir decodes from the
16 kHz mono original.
"""
import contextlib
import shutil
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump
from scipy.signal import butter, resample_poly, sosfiltfilt
from transformers import WhisperConfig, WhisperForConditionalGeneration

from espnet_llm.audio import fbank
from espnet_llm.bin import pack as pack_cli
from espnet_llm.bin import tokenizer_train
from espnet_llm.bin import transcribe as transcribe_cli
from espnet_llm.inference import Speech2TextAM, Speech2TextLLM, Transcript, load_pretrained
from espnet_llm.packing import PackError, locate, pack, unpack_archive
from espnet_llm.tasks.llm_asr import LLMASRTask

TINY_WHISPER = dict(num_mel_bins=80, d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
                    decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, vocab_size=100,
                    max_source_positions=1500, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                    decoder_start_token_id=1)
SMALL_TRANSFORMER = ["output_size=16", "attention_heads=2", "linear_units=16", "num_blocks=1"]
FS = 16000


def band_limited_noise(n: int, fs: int, cutoff: float, seed: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = sosfiltfilt(butter(8, cutoff, fs=fs, output="sos"), rng.standard_normal(n))
    return scale * x / np.abs(x).max()


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """(16 kHz mono int16 samples, its WAV, a 44.1 kHz stereo FLAC whose channel mean is the same speech)."""
    root = tmp_path_factory.mktemp("speech")
    int16 = np.round(band_limited_noise(int(1.2 * FS), FS, 3500, 0, 0.3) * 32767).astype(np.int16)
    sf.write(root / "speech16.wav", int16, FS, subtype="PCM_16")
    at44 = resample_poly(int16 / 32768.0, 441, 160)
    side = band_limited_noise(len(at44), 44100, 3500, 1, 0.05)
    sf.write(root / "speech44_stereo.flac", np.stack([at44 + side, at44 - side], axis=1), 44100, subtype="PCM_24")
    return int16, root / "speech16.wav", root / "speech44_stereo.flac"


def save_config(exp, args):
    exp.mkdir(parents=True, exist_ok=True)
    with open(exp / "config.yaml", "w") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)


@pytest.fixture(scope="module")
def recipe(tiny_llm_dir, tmp_path_factory):
    """A recipe dir with the LLM, the Whisper dir, CMVN stats, a BPE model, training data and rir lists."""
    root = tmp_path_factory.mktemp("recipe") / "egs" / "tiny" / "asr1"
    shutil.copytree(tiny_llm_dir, root / "exp" / "llm" / "tiny-llama")
    torch.manual_seed(0)
    WhisperForConditionalGeneration(WhisperConfig(**TINY_WHISPER)).save_pretrained(root / "exp" / "whisper" / "tiny")
    feats = np.concatenate([fbank(band_limited_noise(8000, FS, 3500, s, 0.3)).numpy() for s in range(3)])
    stats = root / "exp" / "asr_stats" / "train"
    stats.mkdir(parents=True)
    np.savez(stats / "feats_stats.npz", count=len(feats), sum=feats.sum(0), sum_square=(feats**2).sum(0))
    for name in ("data/train/wav.scp", "data/train/utt2num_samples", "data/rirs/wav.scp"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("u1 x\n")
    words = "yes no one two three four five".split()
    (root / "data/train/text").write_text("".join(f"u{i} {words[i % 7]} {words[(3 * i) % 7]}\n" for i in range(40)))
    with contextlib.chdir(root):
        tokenizer_train.main(["--text", "data/train/text", "--nbpe", "20", "--out_dir", "data/token_list/bpe20"])
    return root


def build_speech_llm(recipe, name, extra):
    """exp/<name>: an untrained speech LLM (LoRA B randomised so that the adapters matter), paths recipe-relative."""
    exp = recipe / "exp" / name
    exp.mkdir(parents=True)
    (exp / "ctc_vocab.txt").write_text("".join(f"{i}\n" for i in range(3, 80)))
    with contextlib.chdir(recipe):
        args = LLMASRTask.get_parser().parse_args([
            "--output_dir", f"exp/{name}", "--llm_conf", "name_or_path=exp/llm/tiny-llama", "--llm_conf", "tuning=lora",
            "--projector", "stack_linear", "--projector_conf", "stack=2",
            "--model_conf", "ctc_weight=0.3", "--model_conf", "prompt=transcribe", "--ctc_vocab", f"exp/{name}/ctc_vocab.txt",
            "--train_data_path_and_name_and_type", "data/train/wav.scp,speech,sound",
            "--train_shape_file", "data/train/utt2num_samples", "--rir_scp", "data/rirs/wav.scp", *extra,
        ])
        torch.manual_seed(0)
        model = LLMASRTask.build_model(args)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    save_config(exp, args)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return exp


@pytest.fixture(scope="module")
def whisper_llm(recipe):
    return build_speech_llm(recipe, "llm_asr_whisper", [
        "--encoder", "whisper", "--encoder_conf", "model_dir=exp/whisper/tiny", "--encoder_conf", "freeze=true",
        "--input_size", "1", "--normalize", "none"])


@pytest.fixture(scope="module")
def fbank_llm(recipe):
    conf = [a for kv in SMALL_TRANSFORMER for a in ("--encoder_conf", kv)]
    return build_speech_llm(recipe, "llm_asr_fbank", [
        "--encoder", "transformer", *conf, "--input_size", "80", "--normalize", "global_mvn",
        "--normalize_conf", "stats_file=exp/asr_stats/train/feats_stats.npz"])


@pytest.fixture(scope="module")
def am(recipe):
    """exp/asr_tiny: an ESPnet ASRTask model (fbank in, global CMVN, BPE 20), configured as the recipe does."""
    from espnet2.tasks.asr import ASRTask

    small = [a for kv in SMALL_TRANSFORMER for a in ("--encoder_conf", kv)]
    decoder = [a for kv in ("attention_heads=2", "linear_units=16", "num_blocks=1") for a in ("--decoder_conf", kv)]
    with contextlib.chdir(recipe):
        args = ASRTask.get_parser().parse_args([
            "--output_dir", "exp/asr_tiny", "--input_size", "80", "--normalize", "global_mvn",
            "--normalize_conf", "stats_file=exp/asr_stats/train/feats_stats.npz", "--token_type", "bpe",
            "--token_list", "data/token_list/bpe20/tokens.txt", "--bpemodel", "data/token_list/bpe20/bpe.model",
            "--encoder", "transformer", *small, "--decoder", "transformer", *decoder, "--model_conf", "ctc_weight=0.3",
            "--train_data_path_and_name_and_type", "data/train/wav.scp,speech,sound",
        ])
        args.frontend = None
        torch.manual_seed(0)
        model = ASRTask.build_model(args)
    exp = recipe / "exp" / "asr_tiny"
    save_config(exp, args)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return exp


def reference(s2t, int16):
    """What the exp dir decodes from the 16 kHz mono original (features as feats_extract computes them)."""
    wav = int16.astype(np.float32) / 32768.0
    x = fbank(wav).numpy() if s2t.speech_input.kind == "fbank" else wav
    return s2t._best(x)


def check_transcribes_like(loaded, ref, speech):
    int16, _, flac44 = speech
    got = loaded.transcribe(int16, sample_rate=FS, return_details=True)
    assert isinstance(got, Transcript) and got.text == ref.text and got.token_ids == ref.token_ids
    assert got.score == pytest.approx(ref.score, abs=1e-3)
    assert loaded.transcribe(str(flac44)) == ref.text
    assert loaded.transcribe(flac44, return_details=True).token_ids == ref.token_ids


def archive_names(path):
    with zipfile.ZipFile(path) as z:
        return set(z.namelist())


@pytest.mark.parametrize("system, llm_mode, suffix", [("whisper", "copy", ".zip"), ("fbank", "merged", ".tar.gz")])
def test_speech_llm_archive_transcribes_from_anywhere(system, llm_mode, suffix, whisper_llm, fbank_llm, speech,
                                                      tmp_path, monkeypatch):
    exp = whisper_llm if system == "whisper" else fbank_llm
    archive = tmp_path / "out" / f"packed{suffix}"
    assert pack_cli.main(["--exp_dir", str(exp), "--model", "valid.acc.ave.pth", "--out", str(archive),
                          "--llm", llm_mode]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # neither the recipe's exp/... paths nor the archive's names resolve from here
    from_exp = Speech2TextLLM.from_pretrained(exp)  # recipe-relative paths found from the recipe dir
    ref = reference(from_exp, speech[0])
    assert ref.text and ref.tokens == from_exp.tokenizer.convert_ids_to_tokens(ref.token_ids)

    loaded = Speech2TextLLM.from_pretrained(archive, cache_dir=tmp_path / "cache")
    assert loaded.speech_input.kind == ("raw" if system == "whisper" else "fbank")
    check_transcribes_like(loaded, ref, speech)

    root = unpack_archive(archive, tmp_path / "cache")
    config = yaml.safe_load((root / "config.yaml").read_text())
    assert config["llm_conf"]["name_or_path"] == "llm" and config["ctc_vocab"] == "ctc_vocab.txt"
    assert config["llm_conf"]["tuning"] == ("lora" if llm_mode == "copy" else "frozen")
    assert config["train_data_path_and_name_and_type"] == [] and config["rir_scp"] is None
    assert config["train_shape_file"] == [] and config["output_dir"] is None
    meta = yaml.safe_load((root / "meta.yaml").read_text())
    assert meta["files"] == {"asr_model_file": "valid.acc.ave.pth"}
    assert meta["yaml_files"] == {"asr_train_config": "config.yaml"}
    assert meta["espnet_llm"]["kind"] == "speech_llm" and meta["espnet_llm"]["llm"] == llm_mode
    assert meta["espnet_llm"]["dropped"]["rir_scp"] == "data/rirs/wav.scp"
    state = torch.load(root / "valid.acc.ave.pth", weights_only=True)
    if system == "whisper":
        assert config["encoder_conf"]["model_dir"] == "encoder" and (root / "encoder" / "model.safetensors").is_file()
        assert any("lora_B" in k for k in state)  # the adapters stay in the model file
    else:
        assert config["normalize_conf"]["stats_file"] == "feats_stats.npz" and (root / "feats_stats.npz").is_file()
        assert not any(k.startswith("llm.") for k in state)  # merged into llm/
        assert (root / "llm" / "tokenizer.json").is_file()
    assert unpack_archive(archive, tmp_path / "cache") == root  # unpacked once, keyed by the archive's hash


def test_am_archive_transcribes_from_anywhere_and_is_espnets_format(am, speech, tmp_path, monkeypatch):
    from espnet2.bin.asr_inference import Speech2Text
    from espnet2.main_funcs.pack_funcs import unpack

    archive = tmp_path / "am.zip"
    pack(am, archive)
    names = archive_names(archive)
    assert {"meta.yaml", "config.yaml", "valid.acc.ave.pth", "bpe.model", "feats_stats.npz"} <= names
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    options = dict(beam_size=2, ctc_weight=0.3, maxlenratio=0.3)
    from_exp = Speech2TextAM.from_pretrained(am, **options)
    ref = reference(from_exp, speech[0])
    assert ref.tokens and len(ref.tokens) == len(ref.token_ids)
    loaded = Speech2TextAM.from_pretrained(archive, cache_dir=tmp_path / "cache", **options)
    check_transcribes_like(loaded, ref, speech)
    # ESPnet's own unpack() gives Speech2Text's arguments: the same decoding
    s2t = Speech2Text(**unpack(archive, tmp_path / "espnet_unpack"), **options)
    feats = fbank(speech[0].astype(np.float32) / 32768.0).numpy()
    text, tokens, token_ids, hyp = s2t(feats)[0]
    assert (text, token_ids) == (ref.text, ref.token_ids)


def test_load_pretrained_and_cli_pick_the_kind_from_the_config(whisper_llm, am, speech, tmp_path, capsys,
                                                              monkeypatch):
    llm_zip, am_zip = tmp_path / "llm.zip", tmp_path / "am.zip"
    pack(whisper_llm, llm_zip)
    pack(am, am_zip)
    monkeypatch.setenv("ESPNET_LLM_CACHE", str(tmp_path / "cache"))
    assert isinstance(load_pretrained(llm_zip), Speech2TextLLM)
    assert isinstance(load_pretrained(am_zip, beam_size=2), Speech2TextAM)
    with pytest.raises(PackError, match="Speech2TextAM"):
        Speech2TextLLM.from_pretrained(am_zip)
    with pytest.raises(PackError, match="Speech2TextLLM"):
        Speech2TextAM.from_pretrained(llm_zip)

    _, wav16, flac44 = speech
    expected = Speech2TextLLM.from_pretrained(llm_zip, text_case="upper").transcribe(wav16)
    assert transcribe_cli.main([str(llm_zip), str(wav16), str(flac44), "--text_case", "upper"]) == 0
    assert capsys.readouterr().out == f"{wav16} {expected}\n{flac44} {expected}\n"
    assert transcribe_cli.main([str(am_zip), str(wav16), "--beam_size", "2", "--details"]) == 0
    path, score, *words = capsys.readouterr().out.split()
    assert path == str(wav16) and float(score) < 0


def test_transcribe_reads_any_rate_and_rejects_bad_input(whisper_llm, speech, tmp_path):
    s2t = Speech2TextLLM.from_pretrained(whisper_llm)
    int16, wav16, _ = speech
    float32 = int16.astype(np.float32) / 32768.0
    assert s2t.transcribe(int16) == s2t.transcribe(float32) == s2t.transcribe(wav16)  # arrays: 16 kHz by default
    stereo = np.stack([float32, float32], axis=1)
    assert s2t.transcribe(stereo, sample_rate=FS) == s2t.transcribe(float32)
    with pytest.raises(ValueError, match="sample_rate is for arrays"):
        s2t.transcribe(wav16, sample_rate=44100)
    from espnet_llm.audio import AudioError

    with pytest.raises(AudioError, match="dtype uint8"):
        s2t.transcribe(np.zeros(1600, dtype=np.uint8))
    with pytest.raises(AudioError, match="does not exist"):
        s2t.transcribe(tmp_path / "missing.flac")


def test_pack_errors_name_the_problem(whisper_llm, am, tmp_path):
    with pytest.raises(PackError, match="must end with"):
        pack(whisper_llm, tmp_path / "out.rar")
    with pytest.raises(PackError, match="applies to speech LLM"):
        pack(am, tmp_path / "am.zip", llm="merged")
    with pytest.raises(FileNotFoundError, match="no such exp dir or packed model"):
        locate(tmp_path / "nothing")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(PackError, match="cannot unpack"):
        unpack_archive(bad, tmp_path / "cache")
    no_meta = tmp_path / "no_meta.zip"
    with zipfile.ZipFile(no_meta, "w") as z:
        z.writestr("config.yaml", "a: 1\n")
    with pytest.raises(PackError, match="no meta.yaml"):
        unpack_archive(no_meta, tmp_path / "cache")
    # a config naming a file pack does not know how to ship
    exp = tmp_path / "exp" / "llm_asr_odd"
    shutil.copytree(whisper_llm, exp)
    config = yaml.safe_load((exp / "config.yaml").read_text())
    config["llm_conf"]["name_or_path"] = str(whisper_llm.parents[1] / "exp" / "llm" / "tiny-llama")
    config["encoder_conf"]["model_dir"] = str(whisper_llm.parents[1] / "exp" / "whisper" / "tiny")
    config["ctc_vocab"] = str(exp / "ctc_vocab.txt")
    config["model_conf"]["extra_file"] = str(exp / "ctc_vocab.txt")
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(PackError, match="model_conf.extra_file"):
        pack(exp, tmp_path / "odd.zip")
    # an exp dir whose LLM is gone: the error names the key and where it was looked for
    config["model_conf"].pop("extra_file")
    config["llm_conf"]["name_or_path"] = "exp/llm/gone"
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(FileNotFoundError, match="llm_conf.name_or_path = exp/llm/gone does not exist"):
        locate(exp)
