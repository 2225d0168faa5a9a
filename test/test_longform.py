"""espnet_llm.longform: long recordings cut at pauses by Silero VAD, decoded segment by segment, stitched with times."""
import resource
import shutil
import subprocess

import numpy as np
import pytest
import torch

from espnet_llm.longform import merge_regions

FS = 16000
SENTENCES = ["the old man walked slowly to the edge of the river", "seven two nine four enter",
             "she said that the weather would turn cold by the evening", "please repeat the last number",
             "all of the children were asleep before the storm began"]


def test_merged_segments_stay_short_keep_their_order_and_are_cut_in_the_pauses():
    regions = [(16000 * a, 16000 * b) for a, b in ((1, 9), (10, 20), (22, 29), (31, 33), (40, 70))]
    pieces = merge_regions(regions, 16000 * 75, FS, max_seconds=30)
    assert all(b - a <= 30 * FS for a, b in pieces)
    assert all(a1 <= a2 and b1 <= a2 for (a1, b1), (a2, b2) in zip(pieces, pieces[1:]))
    # every region lies inside one piece
    assert all(any(a <= s and e <= b for a, b in pieces) for s, e in regions)
    # 1-29 s together (widened to 0-30 s), 31-33 s (widened into the pauses), 40-70 s alone (no room to widen)
    assert pieces == [(0, 30 * FS), (30 * FS, 36 * FS + FS // 2), (40 * FS, 70 * FS)]
    assert merge_regions([], 1000, FS, 30) == []


def recording(tmp_path, minutes: float, pause: float = 1.2):
    """Sentences spoken by eSpeak NG with pauses between them, repeated to `minutes` (16 kHz mono float)."""
    from espnet_llm.audio import load_audio

    pieces = []
    for i, text in enumerate(SENTENCES):
        wav = tmp_path / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        pieces.append(load_audio(wav, FS))
    silence = np.zeros(int(pause * FS), np.float32)
    out, n = [], 0
    while n < minutes * 60 * FS:
        for p in pieces:
            out += [p, silence]
            n += len(p) + len(silence)
    return np.concatenate(out)[: int(minutes * 60 * FS)]


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@needs_espeak
def test_vad_segments_of_a_recording_with_pauses(tmp_path):
    from espnet_llm.longform import speech_segments

    wav = recording(tmp_path, 1.0)
    segments = speech_segments(wav, FS, max_seconds=10)
    assert len(segments) >= 6 and all(b - a <= 10 * FS for a, b in segments)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(segments, segments[1:]))
    covered = sum(b - a for a, b in segments) / len(wav)
    assert covered > 0.6  # the speech and the pauses between its sentences, not the audio dropped
    assert speech_segments(np.zeros(20 * FS, np.float32), FS) == []  # silence: nothing to decode


@pytest.fixture(scope="module")
def raw_speech_llm(tiny_llm_dir, tmp_path_factory, write_exp_dir):
    """A tiny speech LLM on raw audio (a 1-layer Whisper-architecture encoder, untrained) saved as an exp dir."""
    from espnet_llm.tasks.llm_asr import LLMASRTask

    whisper = dict(num_mel_bins=80, d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
                   decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, vocab_size=100,
                   max_source_positions=1500)
    exp = tmp_path_factory.mktemp("exp") / "llm_asr_raw"
    args = LLMASRTask.get_parser().parse_args(["--output_dir", str(exp), "--frontend", "none", "--input_size", "1",
                                               "--normalize", "none", "--encoder", "whisper",
                                               "--projector", "stack_linear", "--projector_conf", "stack=8",
                                               "--llm_conf", f"name_or_path={tiny_llm_dir}", "--llm_conf", "tuning=lora",
                                               "--model_conf", "ctc_weight=0.3"])
    args.encoder_conf = dict(whisper_config=whisper, freeze=False)
    torch.manual_seed(0)
    return write_exp_dir(exp, args, LLMASRTask.build_model(args))


@needs_espeak
def test_a_three_minute_recording_decodes_in_segments_with_bounded_memory(raw_speech_llm, tmp_path):
    from espnet_llm.inference import Speech2TextLLM
    from espnet_llm.longform import LongTranscript

    s2t = Speech2TextLLM.from_pretrained(raw_speech_llm, maxlenratio=0.05, maxlen_offset=2)
    short = recording(tmp_path, 0.75)
    s2t.transcribe(short, long_form=True)  # warm: the VAD and the models loaded, buffers allocated
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wav = recording(tmp_path, 3.0)
    result = s2t.transcribe(wav, return_details=True)  # auto: 180 s > the encoder's 30 s window
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert isinstance(result, LongTranscript) and len(result.segments) >= 6
    assert all(0 <= s.start < s.end <= 180.0 and s.end - s.start <= 30.0 for s in result.segments)
    assert all(a.end <= b.start for a, b in zip(result.segments, result.segments[1:]))
    assert result.text == " ".join(s.text for s in result.segments if s.text)
    with pytest.raises(ValueError, match="split_pause_seconds must be > 0"):
        s2t.transcribe(short, split_pause_seconds=0)
    assert grown_mib < 150, f"peak memory grew {grown_mib:.0f} MiB for a 4x longer recording"
    # the same segments one by one give the same texts as the batch
    alone = [s2t.transcribe(wav[int(s.start * FS):int(s.end * FS)], long_form=False) for s in result.segments[:3]]
    assert alone == [s.text for s in result.segments[:3]]


@needs_espeak
@pytest.mark.parametrize("how, cut", [
    (["--batch_size", "2"], ["rec-long"]),  # auto: only what is longer than --max_segment_seconds
    (["--merge_segment_seconds", "4"], ["rec-long", "rec-short"]),  # auto: longer than a segment may be (6 s > 4)
    (["--long_form", "true", "--split_pause_seconds", "0.8"], ["rec-long", "rec-short"]),  # every recording
], ids=["auto_batched", "auto_merge", "long_form"])
def test_the_decoding_entry_point_takes_a_long_recording_and_writes_its_segments(raw_speech_llm, tmp_path, how, cut):
    import soundfile as sf

    from espnet_llm.bin.llm_asr_inference import main

    sf.write(tmp_path / "long.wav", recording(tmp_path, 1.0), FS)
    sf.write(tmp_path / "short.wav", recording(tmp_path, 0.1), FS)
    (tmp_path / "wav.scp").write_text(f"rec-long {tmp_path / 'long.wav'}\nrec-short {tmp_path / 'short.wav'}\n")
    out = tmp_path / "out"
    main(["--exp_dir", str(raw_speech_llm), "--data_path_and_name_and_type", f"{tmp_path / 'wav.scp'},speech,sound",
          "--output_dir", str(out), "--max_segment_seconds", "10", "--maxlenratio", "0.05", "--maxlen_offset", "2",
          *how])  # the recordings in `cut` in segments, the others decoded as they are, in one batch
    recog = out / "1best_recog"
    assert sorted(line.split()[0] for line in (recog / "text").read_text().splitlines()) == ["rec-long", "rec-short"]
    segments = [line.split() for line in (recog / "segments").read_text().splitlines()]
    assert sorted({rec for _, rec, _, _ in segments}) == cut
    assert sum(rec == "rec-long" for _, rec, _, _ in segments) >= 6
    for rec in cut:
        times = [(float(a), float(b)) for _, r, a, b in segments if r == rec]
        assert all(0 <= a < b <= 60 and b - a <= 10 + 1e-6 for a, b in times) and times == sorted(times)
    assert len((recog / "segment_text").read_text().splitlines()) == len(segments)
    assert (out / ".done").is_file()
    token_int = recog / "token_int"  # written for the recordings decoded whole
    whole = [line.split()[0] for line in token_int.read_text().splitlines()] if token_int.exists() else []
    assert whole == [r for r in ("rec-long", "rec-short") if r not in cut]


@needs_espeak
def test_transcribe_prints_the_segments_of_a_long_file(raw_speech_llm, tmp_path, capsys):
    import soundfile as sf

    from espnet_llm.bin.transcribe import main

    sf.write(tmp_path / "long.flac", recording(tmp_path, 0.5), FS)
    assert main([str(raw_speech_llm), str(tmp_path / "long.flac"), "--segments", "--max_segment_seconds", "10"]) == 0
    lines = [line.split(maxsplit=3) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) >= 3 and all(line[0] == str(tmp_path / "long.flac") for line in lines)
    assert [float(line[1]) for line in lines] == sorted(float(line[1]) for line in lines)


def test_a_merge_limit_keeps_segments_short_and_cut_in_every_pause_it_cannot_bridge():
    regions = [(16000 * a, 16000 * b) for a, b in ((1, 4), (5, 8), (9, 12), (13, 16))]
    assert len(merge_regions(regions, 16000 * 17, FS, max_seconds=30)) == 1
    pieces = merge_regions(regions, 16000 * 17, FS, max_seconds=30, merge_seconds=8)
    assert [(a // FS, b // FS) for a, b in pieces] == [(0, 8), (8, 17)]  # 1-8 s and 9-16 s, cut in the pause at 8.5
    assert all(any(a <= s and e <= b for a, b in pieces) for s, e in regions)
    assert len(merge_regions(regions, 16000 * 17, FS, max_seconds=30, merge_seconds=2)) == 4


def test_a_pause_rule_cuts_every_sentence_level_pause_and_keeps_the_short_ones():
    # two utterances of spelled letters: pauses of 0.3 s inside them, 1.2 s between (the gaps between the regions
    # as the VAD gives them, each region padded by 0.1 s: pauses of 0.5 s and 1.4 s)
    seconds = ((1.0, 2.0), (2.3, 3.0), (3.3, 4.0), (5.2, 6.0), (6.3, 7.0))
    regions = [(int(a * FS), int(b * FS)) for a, b in seconds]
    total = 8 * FS
    assert len(merge_regions(regions, total, FS, max_seconds=30, merge_seconds=8, pad_seconds=0.1)) == 1  # off
    pieces = merge_regions(regions, total, FS, max_seconds=30, merge_seconds=8, split_pause_seconds=0.8,
                           pad_seconds=0.1)
    assert pieces == [(0, int(4.6 * FS)), (int(4.6 * FS), total)]  # cut in the middle of the 1.2-s gap
    assert all(any(a <= s and e <= b for a, b in pieces) for s, e in regions)
    # the pause is measured before the padding: 0.3 s + 2 x 0.1 s = 0.5 s reaches a rule of 0.5 s, not one of 0.6 s
    assert len(merge_regions(regions, total, FS, 30, 8, split_pause_seconds=0.5, pad_seconds=0.1)) == 5
    assert len(merge_regions(regions, total, FS, 30, 8, split_pause_seconds=0.6, pad_seconds=0.1)) == 2
    assert len(merge_regions(regions, total, FS, 30, 8, split_pause_seconds=0.5)) == 2  # no padding: pauses of 0.3 s
    # regions that touch (a pause shorter than two pads, split by the VAD in its middle) are never split by the rule
    touching = [(0, FS), (FS, 2 * FS)]
    assert len(merge_regions(touching, 3 * FS, FS, 30, 8, split_pause_seconds=0.1, pad_seconds=0.1)) == 1


def test_the_merge_limits_still_apply_with_a_pause_rule():
    regions = [(16000 * a, 16000 * b) for a, b in ((1, 4), (5, 8), (9, 12), (13, 16))]  # pauses of 1 s
    assert [(a // FS, b // FS) for a, b in merge_regions(regions, 17 * FS, FS, 30, 8, split_pause_seconds=1.5)] == \
        [(0, 8), (8, 17)]  # as without the rule: no pause reaches 1.5 s, the 8-s merge cuts
    assert len(merge_regions(regions, 17 * FS, FS, 30, 8, split_pause_seconds=1.0)) == 4
    long_speech = [(0, 25 * FS), (25 * FS + FS // 10, 40 * FS)]  # a short pause; max_seconds still cuts there
    assert len(merge_regions(long_speech, 40 * FS, FS, 30, split_pause_seconds=5.0)) == 2


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan")])
def test_a_pause_rule_must_be_positive(bad):
    from espnet_llm.bin.llm_asr_inference import get_parser
    from espnet_llm.longform import speech_segments

    with pytest.raises(ValueError, match="split_pause_seconds must be > 0"):
        merge_regions([(0, FS)], FS, FS, 30, split_pause_seconds=bad)
    with pytest.raises(ValueError, match="split_pause_seconds must be > 0"):
        speech_segments(np.zeros(FS, np.float32), FS, split_pause_seconds=bad)  # before the VAD runs
    required = ["--output_dir", "out", "--data_path_and_name_and_type", "wav.scp,speech,sound"]
    with pytest.raises(SystemExit):
        get_parser().parse_args(required + ["--split_pause_seconds", str(bad)])
    assert get_parser().parse_args(required + ["--split_pause_seconds", "0.6"]).split_pause_seconds == 0.6
    assert get_parser().parse_args(required).split_pause_seconds is None


@needs_espeak
def test_a_pause_rule_gives_each_sentence_of_a_recording_its_own_segment(tmp_path):
    from espnet_llm.longform import speech_segments

    wav = recording(tmp_path, 0.35, pause=1.2)  # 21 s: sentences with pauses of 1.2 s (and eSpeak's own silences)
    voiced = np.flatnonzero(np.abs(wav) > 1e-3)
    pauses = np.diff(voiced) > FS  # the gaps of over 1 s between sentences (a word's pause is much shorter)
    together = speech_segments(wav, FS, max_seconds=30)
    apart = speech_segments(wav, FS, max_seconds=30, split_pause_seconds=0.8)
    assert len(together) == 1 and len(apart) == pauses.sum() + 1 >= len(SENTENCES)
    # every cut lies in one of those pauses
    gaps = [(voiced[i], voiced[i + 1]) for i in np.flatnonzero(pauses)]
    assert all(any(a < b1 < b for a, b in gaps) for (_, b1) in apart[:-1])


def test_a_recording_longer_than_a_segment_may_be_is_cut():
    from espnet_llm.longform import needs_segmenting, segment_limit

    assert segment_limit(30.0) == 30.0 and segment_limit(30.0, 8.0) == 8.0 and segment_limit(10.0, 20.0) == 10.0
    assert needs_segmenting(12 * FS, FS, segment_limit(30.0, 8.0)) and not needs_segmenting(12 * FS, FS, 30.0)


def nonspeech(seconds: float = 3.0):
    """Silence, white noise and a melody of pure tones (16 kHz float): what `make_stress_set` puts in its
    non-speech set."""
    rng = np.random.default_rng(0)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    melody = np.concatenate([0.3 * np.sin(2 * np.pi * f * t[: n // 4]) for f in (440, 554, 659, 880)])
    return {"silence": np.zeros(n, np.float32), "noise": (0.1 * rng.standard_normal(n)).astype(np.float32),
            "tones": melody.astype(np.float32)}


@needs_espeak
def test_the_vad_finds_speech_in_speech_and_none_in_silence_noise_or_tones(tmp_path):
    from espnet_llm.longform import has_speech

    assert has_speech(recording(tmp_path, 0.1), FS)
    assert {name: has_speech(wav, FS) for name, wav in nonspeech().items()} == dict.fromkeys(nonspeech(), False)
    assert not has_speech(np.zeros(0, np.float32), FS)


@needs_espeak
def test_the_vad_gate_leaves_non_speech_undecoded_and_decodes_speech(raw_speech_llm, tmp_path):
    import soundfile as sf

    from espnet_llm.bin.llm_asr_inference import main
    from espnet_llm.inference import Speech2TextLLM
    from espnet_llm.longform import LongTranscript

    s2t = Speech2TextLLM.from_pretrained(raw_speech_llm, maxlenratio=0.05, maxlen_offset=2)
    speech = recording(tmp_path, 0.1)
    noise = nonspeech()["noise"]
    assert s2t.transcribe(noise, vad_gate=True) == ""
    assert s2t.transcribe(noise, vad_gate=True, return_details=True) == LongTranscript("", [])
    assert s2t.transcribe(speech, vad_gate=True) == s2t.transcribe(speech)  # speech: decoded as without the gate

    lines = []
    for name, wav in [("a-speech", speech), *nonspeech().items()]:
        sf.write(tmp_path / f"{name}.wav", wav, FS)
        lines.append(f"{name} {tmp_path / f'{name}.wav'}\n")
    (tmp_path / "wav.scp").write_text("".join(lines))
    out = tmp_path / "out"
    main(["--exp_dir", str(raw_speech_llm), "--data_path_and_name_and_type", f"{tmp_path / 'wav.scp'},speech,sound",
          "--output_dir", str(out), "--maxlenratio", "0.05", "--maxlen_offset", "2", "--batch_size", "4",
          "--vad_gate", "true"])
    recog = out / "1best_recog"
    vad = dict(line.split() for line in (recog / "vad").read_text().splitlines())
    assert vad == {"a-speech": "speech", "noise": "no_speech", "silence": "no_speech", "tones": "no_speech"}
    text = dict((line.split(" ", 1) + [""])[:2] for line in (recog / "text").read_text().splitlines())
    assert sorted(text) == sorted(vad) and all(text[k].strip() == "" for k in ("noise", "silence", "tones"))
    assert text["a-speech"].strip() == s2t.transcribe(speech)  # decoded (the tiny model's words, whatever they are)
    assert [line.split()[0] for line in (recog / "token_int").read_text().splitlines()] == ["a-speech"]


def test_transcribe_prints_an_empty_transcript_for_a_file_without_speech(raw_speech_llm, tmp_path, capsys):
    import soundfile as sf

    from espnet_llm.bin.transcribe import main

    sf.write(tmp_path / "noise.flac", nonspeech()["noise"], FS)
    assert main([str(raw_speech_llm), str(tmp_path / "noise.flac"), "--vad_gate"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'noise.flac'} \n"
