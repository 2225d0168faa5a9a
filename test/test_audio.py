"""Tests of espnet_llm.audio.read_audio on real audio files written with soundfile."""
import numpy as np
import pytest
import soundfile as sf

from espnet_llm.audio import AudioError, read_audio

TONE = (0.5 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)).astype(np.float32)


@pytest.mark.parametrize("name, subtype, atol", [("a.wav", "PCM_16", 1 / 32768), ("a.flac", "PCM_16", 1 / 32768),
                                                 ("a.wav", "FLOAT", 0.0)])
def test_reads_mono_float32(tmp_path, name, subtype, atol):
    path = tmp_path / name
    sf.write(path, TONE, 16000, subtype=subtype)
    audio = read_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (1600,)
    np.testing.assert_allclose(audio, TONE, atol=atol)


def test_reads_a_kaldi_pipe_entry(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, TONE, 16000)
    audio = read_audio(f"cat {path} |", utt_id="spk-1")
    np.testing.assert_allclose(audio, read_audio(path), atol=0)


def test_failing_pipe_names_command_status_and_stderr(tmp_path):
    with pytest.raises(AudioError) as err:
        read_audio(f"cat {tmp_path}/missing.wav | cat |", utt_id="spk-2")
    message = str(err.value)
    assert message.startswith(f"utterance spk-2: audio command 'cat {tmp_path}/missing.wav | cat' failed with exit status 1")
    assert "No such file or directory" in message
    with pytest.raises(AudioError, match="utterance spk-3: audio command 'true' wrote nothing to stdout"):
        read_audio("true |", utt_id="spk-3")


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=f"^utterance u1: audio file {tmp_path}/nope.wav does not exist$"):
        read_audio(tmp_path / "nope.wav", utt_id="u1")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"utterance u2: audio file .*empty.wav is empty \(0 bytes\)"):
        read_audio(tmp_path / "empty.wav", utt_id="u2")


def test_corrupt_file(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, TONE, 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"JUNK" + good.read_bytes()[4:])  # RIFF magic destroyed
    with pytest.raises(AudioError, match=r"utterance u3: cannot read audio file .*bad.wav: corrupt or unsupported"):
        read_audio(bad, utt_id="u3")


def test_wrong_sample_rate_says_found_and_expected(tmp_path):
    path = tmp_path / "8k.wav"
    sf.write(path, TONE[:800], 8000)
    with pytest.raises(AudioError, match=r"utterance u4: audio file .*8k.wav has sample rate 8000 Hz, expected 16000 Hz"):
        read_audio(path, utt_id="u4")
    assert read_audio(path, expected_fs=8000).shape == (800,)
    assert read_audio(path, expected_fs=None).shape == (800,)


def test_stereo_is_an_error_unless_allowed(tmp_path):
    path = tmp_path / "stereo.wav"
    stereo = np.stack([TONE, np.zeros_like(TONE)], axis=1)
    sf.write(path, stereo, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"utterance u5: audio file .*stereo.wav has 2 channels, expected mono"):
        read_audio(path, utt_id="u5")
    audio = read_audio(path, allow_stereo=True)
    assert audio.dtype == np.float32 and audio.shape == (1600,)
    np.testing.assert_allclose(audio, TONE / 2, atol=1e-7)


def test_zero_length_audio(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    assert path.stat().st_size > 0  # a valid header and no samples
    with pytest.raises(AudioError, match=r"utterance u6: audio file .*zero.wav has no samples"):
        read_audio(path, utt_id="u6")


def test_error_without_utt_id_names_only_the_file(tmp_path):
    with pytest.raises(AudioError, match=f"^audio file {tmp_path}/x.wav does not exist$"):
        read_audio(str(tmp_path / "x.wav"))
