"""Tests of espnet_llm.bin.llm_asr_inference on a tiny trained-like experiment dir (real ESPnet task, real LLM)."""

import logging

import numpy as np
import pytest
import torch
import yaml
from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

from espnet_llm.bin.llm_asr_inference import Speech2TextLLM, find_model_files, main
from espnet_llm.decode.guards import word_error_rate
from espnet_llm.tasks.llm_asr import LLMASRTask

FEAT_DIM = 8


@pytest.fixture(scope="module")
def exp_dir(tiny_llm_dir, tmp_path_factory):
    """config.yaml + valid.acc.ave.pth of an untrained tiny model (conv2d transformer encoder, LoRA, CTC head)."""
    exp = tmp_path_factory.mktemp("exp") / "llm_asr_tiny"
    args = LLMASRTask.get_parser().parse_args(
        [
            "--output_dir", str(exp), "--input_size", str(FEAT_DIM), "--normalize", "none",
            "--encoder", "transformer", "--encoder_conf", "output_size=16", "--encoder_conf", "attention_heads=2",
            "--encoder_conf", "linear_units=16", "--encoder_conf", "num_blocks=1",
            "--projector", "stack_linear", "--projector_conf", "stack=2",
            "--llm_conf", f"name_or_path={tiny_llm_dir}", "--llm_conf", "tuning=lora",
            "--model_conf", "ctc_weight=0.3", "--model_conf", "prompt=transcribe",
        ]
    )
    torch.manual_seed(0)
    model = LLMASRTask.build_model(args)
    with torch.no_grad():  # LoRA B starts at zero; make the adapters matter for the reload check
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    exp.mkdir(parents=True)
    with open(exp / "config.yaml", "w") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)
    torch.save(model.state_dict(), exp / "valid.acc.ave.pth")
    return exp


def utterances(lengths=(60, 35, 90), seed=0):
    rng = np.random.default_rng(seed)
    return {f"spk-utt{i}": rng.standard_normal((n, FEAT_DIM)).astype(np.float32) for i, n in enumerate(lengths)}


def test_from_pretrained_and_call(exp_dir):
    config, model_file = find_model_files(exp_dir)
    assert (config.name, model_file.name) == ("config.yaml", "valid.acc.ave.pth")
    s2t = Speech2TextLLM.from_pretrained(exp_dir)
    again = Speech2TextLLM.from_pretrained(asr_train_config=config, asr_model_file=model_file)
    lora = {k: v for k, v in s2t.model.state_dict().items() if "lora_B" in k}
    assert lora and all(v.abs().sum() > 0 for v in lora.values())
    speech = utterances()["spk-utt0"]
    (text, ids, score), = s2t(speech)
    assert s2t(torch.from_numpy(speech)) == again(speech) == [(text, ids, score)]
    assert ids and s2t.eos not in ids and np.isfinite(score) and score < 0
    assert text == " ".join(s2t.tokenizer.decode(ids, skip_special_tokens=True).split())
    maxlen, _ = s2t.length_bounds(14)  # 60 frames -> 14 after conv2d subsampling
    assert len(ids) <= maxlen == 17


def test_batched_greedy_equals_one_by_one_and_beam1(exp_dir):
    s2t = Speech2TextLLM.from_pretrained(exp_dir)
    utts = utterances()
    feats = list(utts.values())
    lengths = torch.tensor([len(f) for f in feats])
    padded = torch.zeros(len(feats), int(lengths.max()), FEAT_DIM)
    for i, f in enumerate(feats):
        padded[i, : len(f)] = torch.from_numpy(f)
    batched = s2t.decode_batch(padded, lengths, keys=list(utts))
    beam1 = Speech2TextLLM(s2t.model, s2t.tokenizer, beam_size=1)
    beam1.use_greedy = False  # ESPnet's BatchBeamSearch with a beam of 1 and the LLM scorer alone
    for f, (best,) in zip(feats, batched):
        (alone,) = s2t(f)
        assert best[:2] == alone[:2] and best[2] == pytest.approx(alone[2], abs=1e-4)
        (by_beam,) = beam1(f)
        assert by_beam[1] == best[1] and by_beam[2] == pytest.approx(best[2], abs=1e-3)


def test_joint_ctc_beam_search_nbest(exp_dir):
    s2t = Speech2TextLLM.from_pretrained(exp_dir, beam_size=3, ctc_weight=0.3, nbest=3, penalty=0.5, text_case="upper")
    assert set(s2t.beam_search.full_scorers) == {"decoder", "length_bonus"}
    assert set(s2t.beam_search.part_scorers) == {"ctc"}
    nbest = s2t(utterances()["spk-utt1"])
    assert len(nbest) == 3
    scores = [score for _, _, score in nbest]
    assert scores == sorted(scores, reverse=True)
    assert len({tuple(ids) for _, ids, _ in nbest}) == 3
    assert all(text == text.upper() for text, _, _ in nbest)
    with pytest.raises(ValueError, match="nbest"):
        Speech2TextLLM(s2t.model, s2t.tokenizer, beam_size=2, nbest=3)


def write_npy_scp(tmp_path, utts):
    scp = tmp_path / "feats.scp"
    lines = []
    for key, feat in utts.items():
        np.save(tmp_path / f"{key}.npy", feat)
        lines.append(f"{key} {tmp_path / (key + '.npy')}")
    scp.write_text("\n".join(lines) + "\n")
    return scp


def read_kaldi(path):
    return dict(line.rstrip("\n").partition(" ")[::2] for line in path.read_text().splitlines())


@pytest.mark.parametrize("extra", [["--batch_size", "2"], ["--beam_size", "3", "--ctc_weight", "0.3"]])
def test_cli_writes_1best_for_key_file(exp_dir, tmp_path, caplog, extra):
    utts = utterances(lengths=(60, 35, 90, 50))
    scp = write_npy_scp(tmp_path, utts)
    keys = sorted(utts)[1:]
    (tmp_path / "keys.scp").write_text("".join(f"{k} {k}\n" for k in keys))
    out = tmp_path / "output.1"
    caplog.set_level(logging.INFO)
    main(
        ["--exp_dir", str(exp_dir), "--data_path_and_name_and_type", f"{scp},speech,npy",
         "--key_file", str(tmp_path / "keys.scp"), "--output_dir", str(out), "--text_case", "upper",
         "--log_interval", "2"] + extra
    )
    text = read_kaldi(out / "1best_recog" / "text")
    assert sorted(text) == keys
    token_int = read_kaldi(out / "1best_recog" / "token_int")
    scores = read_kaldi(out / "1best_recog" / "score")
    beam = "--beam_size" in extra
    s2t = Speech2TextLLM.from_pretrained(exp_dir, text_case="upper", **(dict(beam_size=3, ctc_weight=0.3) if beam else {}))
    for key in keys:
        expected_text, expected_ids, expected_score = s2t(utts[key])[0]
        assert text[key] == expected_text
        assert token_int[key] == " ".join(map(str, expected_ids))
        assert float(scores[key]) == pytest.approx(expected_score, abs=1e-3)
    assert len(read_kaldi(out / "1best_recog" / "token")) == 3
    assert any("RTF" in r.message and "2 utterances" in r.message for r in caplog.records)


def test_too_long_utterance_is_named(exp_dir, tmp_path):
    s2t = Speech2TextLLM.from_pretrained(exp_dir, maxlen_offset=500)  # the tiny LLM has 512 positions
    with pytest.raises(ValueError, match="input 0 is too long"):
        s2t(utterances()["spk-utt0"])
    scp = write_npy_scp(tmp_path, utterances(lengths=(40,)))
    with pytest.raises(SystemExit):
        main(["--exp_dir", str(exp_dir), "--data_path_and_name_and_type", f"{scp},speech,npy",
              "--output_dir", str(tmp_path / "out"), "--maxlen_offset", "500"])


@pytest.mark.parametrize("extra", [["--batch_size", "2"], ["--beam_size", "2", "--ctc_weight", "0.3"]])
def test_cli_writes_ctc_disagreement_and_stops_repetitions(exp_dir, tmp_path, extra):
    utts = utterances(lengths=(60, 35, 90))
    scp = write_npy_scp(tmp_path, utts)
    out = tmp_path / "out"
    main(["--exp_dir", str(exp_dir), "--data_path_and_name_and_type", f"{scp},speech,npy", "--output_dir", str(out),
          "--repeat_ngram", "1", "--repeat_max", "2", "--ctc_disagreement_threshold", "0.3"] + extra)
    text = read_kaldi(out / "1best_recog" / "text")
    token_int = read_kaldi(out / "1best_recog" / "token_int")
    rows = read_kaldi(out / "1best_recog" / "ctc_disagreement")
    assert sorted(rows) == sorted(utts)
    s2t = Speech2TextLLM.from_pretrained(exp_dir)
    for key, feats in utts.items():
        ids = [int(i) for i in token_int[key].split()]
        assert all(ids.count(t) <= 3 for t in set(ids))  # a token may occur k + 1 = 3 times, then EOS is forced
        enc, _ = s2t.encode(torch.from_numpy(feats))
        ctc_text = s2t.ctc_text(enc)
        wer, flag = rows[key].split()
        assert float(wer) == pytest.approx(word_error_rate(ctc_text, text[key]), abs=1e-4)
        assert flag == str(int(float(wer) > 0.3))


@pytest.mark.parametrize("name, beam, ctc", [("greedy", 1, 0.0), ("beam10_ctc0.3", 10, 0.3)])
def test_an4_decode_configs_parse(name, beam, ctc):
    from pathlib import Path

    from espnet_llm.bin.llm_asr_inference import get_parser

    conf = Path(__file__).parents[2] / "egs" / "an4" / "asr1" / "conf" / f"decode_llm_{name}.yaml"
    args = get_parser().parse_args(["--config", str(conf), "--output_dir", "o",
                                    "--data_path_and_name_and_type", "a,speech,kaldi_ark"])
    assert (args.beam_size, args.ctc_weight, args.text_case, args.repeat_ngram) == (beam, ctc, "upper", 2)


def test_ctc_caps_the_length_bound(exp_dir):
    """CTC cannot emit more labels than encoder frames (and ESPnet's CTC prefix scorer fails beyond them)."""
    assert Speech2TextLLM.from_pretrained(exp_dir).length_bounds(14)[0] == 17
    assert Speech2TextLLM.from_pretrained(exp_dir, beam_size=2, ctc_weight=0.3).length_bounds(14)[0] == 14


def test_cli_marks_its_output_done_and_refuses_a_second_decoder_into_it(exp_dir, tmp_path, caplog):
    from espnet_llm.exp_dir import exclusive, is_done

    scp = write_npy_scp(tmp_path, utterances(lengths=(40, 50)))
    out = tmp_path / "output.1"
    cmd = ["--exp_dir", str(exp_dir), "--data_path_and_name_and_type", f"{scp},speech,npy", "--output_dir", str(out)]
    main(cmd)
    assert is_done(out)
    text = (out / "1best_recog" / "text").read_bytes()
    with exclusive(out, "decoding"), caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        main(cmd)  # as a second decode job into the same dir would
    assert stop.value.code == 1 and f"{out} is in use by pid" in caplog.text
    assert (out / "1best_recog" / "text").read_bytes() == text and is_done(out)


@pytest.mark.parametrize("bad, message", [
    ("speech.wav", "for the file speech.wav use transcribe"),
    (np.zeros((0, FEAT_DIM), np.float32), "empty input"),
    (np.full((30, FEAT_DIM), np.nan, np.float32), "NaN or infinite"),
    (np.zeros(16000, np.float32), f"reads fbank features \\(Frames, {FEAT_DIM}\\), got shape \\(16000,\\)"),
    (np.zeros((30, 80), np.float32), f"reads fbank features \\(Frames, {FEAT_DIM}\\), got shape \\(30, 80\\)"),
])
def test_call_refuses_inputs_that_would_decode_garbage(exp_dir, bad, message):
    s2t = Speech2TextLLM.from_pretrained(exp_dir)
    with pytest.raises(ValueError, match=message):
        s2t(bad)


def test_raw_audio_at_another_rate_is_refused_naming_the_utterance(tmp_path):
    import soundfile as sf

    from espnet_llm.audio import AudioError
    from espnet_llm.bin.llm_asr_inference import check_raw_audio
    from espnet_llm.inference import SpeechInput

    for key, fs in (("utt-a", 16000), ("utt-b", 8000), ("utt-c", 44100)):
        sf.write(tmp_path / f"{key}.wav", np.zeros(fs // 10, np.float32), fs)
    (tmp_path / "wav.scp").write_text("".join(f"{k} {tmp_path / k}.wav\n" for k in ("utt-a", "utt-b", "utt-c")))
    triples = [(str(tmp_path / "wav.scp"), "speech", "sound")]
    with pytest.raises(AudioError, match=r"2 recording\(s\) are not 16000 Hz mono .*utt-b \(.*utt-b.wav: 8000 Hz, 1 "
                                         r"channel\(s\)\); utt-c .*44100 Hz.*datadir_tool resample --fs 16000"):
        check_raw_audio(triples, SpeechInput("raw", 16000))
    (tmp_path / "keys").write_text("utt-a utt-a\n")
    check_raw_audio(triples, SpeechInput("raw", 16000), str(tmp_path / "keys"))  # only utt-a: fine
    check_raw_audio([(str(tmp_path / "feats.scp"), "speech", "kaldi_ark")], SpeechInput("raw", 16000))  # not audio


def test_speculative_greedy_gives_greedy_output_with_the_ctc_draft(exp_dir, tmp_path):
    utts = utterances(lengths=(60, 35, 90, 50))
    plain = Speech2TextLLM.from_pretrained(exp_dir)
    fast = Speech2TextLLM.from_pretrained(exp_dir, speculative=True, draft_window=4)
    for key, feats in utts.items():
        (p_text, p_ids, p_score), = plain(feats)
        (f_text, f_ids, f_score), = fast(feats)
        assert (f_text, f_ids) == (p_text, p_ids) and f_score == pytest.approx(p_score, abs=1e-3)
    assert fast.draft_stats.tokens == sum(len(plain(f)[0][1]) for f in utts.values())
    assert fast.draft_stats.proposed > 0
    with pytest.raises(ValueError, match="speculative decoding is greedy search"):
        Speech2TextLLM.from_pretrained(exp_dir, speculative=True, beam_size=2)


def test_hotwords_bias_the_speech_llm_towards_a_listed_word_and_change_nothing_else(exp_dir, tmp_path):
    s2t = Speech2TextLLM.from_pretrained(exp_dir, beam_size=3, ctc_weight=0.3)
    speech = utterances()["spk-utt0"]
    (text, ids, score), = s2t(speech)
    word = next(w for w in "yes no one two three four five six seven eight nine zero".split() if w not in text.split())
    # a large bonus: the listed word (never in the unbiased output) comes in
    biased = Speech2TextLLM.from_pretrained(exp_dir, beam_size=3, ctc_weight=0.3, hotwords=[word], hotword_bonus=8.0)
    assert not biased.use_greedy and biased.hotword_scorer is not None
    (hot_text, hot_ids, hot_score), = biased(speech)
    assert word in hot_text
    # a zero bonus: the same search, the same hypothesis and score
    (zero_text, zero_ids, zero_score), = Speech2TextLLM.from_pretrained(
        exp_dir, beam_size=3, ctc_weight=0.3, hotwords=[word], hotword_bonus=0.0)(speech)
    assert (zero_text, zero_ids) == (text, ids) and zero_score == pytest.approx(score, abs=1e-4)
    # through the entry point: --hotwords names a file
    (tmp_path / "hot.txt").write_text(word + "\n")
    scp = write_npy_scp(tmp_path, {"spk-utt0": speech})
    main(["--exp_dir", str(exp_dir), "--data_path_and_name_and_type", f"{scp},speech,npy", "--beam_size", "3",
          "--ctc_weight", "0.3", "--hotwords", str(tmp_path / "hot.txt"), "--hotword_bonus", "8.0",
          "--output_dir", str(tmp_path / "out")])
    assert read_kaldi(tmp_path / "out" / "1best_recog" / "text")["spk-utt0"] == hot_text


def forced(s2t, token):
    """A hook on the LLM's output layer that makes `token` its every prediction (a looping or a terse LLM)."""
    def hook(module, inputs, output):
        output = output.clone()
        output[..., token] += 1e4
        return output

    return s2t.model.llm.get_output_embeddings().register_forward_hook(hook)


@pytest.mark.parametrize("mode", ["ctc", "joint"])
def test_ctc_fallback_triggers_on_a_looping_llm_and_not_on_a_sane_one(exp_dir, tmp_path, mode):
    speech = utterances()["spk-utt0"]
    s2t = Speech2TextLLM.from_pretrained(exp_dir, fallback=mode, fallback_threshold=100.0)
    enc, _ = s2t.encode(torch.from_numpy(speech))
    handle = forced(s2t, 7)  # one token, never EOS: it loops to the length bound
    try:
        (text, ids, _), = s2t(speech)
        assert s2t.fallbacks == ["loop"]
        if mode == "ctc":
            assert text == s2t.ctc_text(enc)
        assert ids.count(7) < s2t.length_bounds(enc.shape[0])[0] - 1 or mode == "ctc"
    finally:
        handle.remove()
    handle = forced(s2t, s2t.eos)  # ends at once: no loop, within the bound, disagreement not counted (100)
    try:
        (text, ids, _), = s2t(speech)
        assert s2t.fallbacks == [""] and ids == []
        # a threshold below any disagreement: the CTC best path differs from the empty answer
        strict = Speech2TextLLM(s2t.model, s2t.tokenizer, fallback="ctc", fallback_threshold=0.0)  # the hooked LLM
        strict.speech_input = s2t.speech_input
        (text, _, _), = strict(speech)
        assert strict.fallbacks == ["ctc_disagreement"] and text == strict.ctc_text(enc) != ""
    finally:
        handle.remove()
    with pytest.raises(ValueError, match="fallback"):
        Speech2TextLLM(s2t.model, s2t.tokenizer, fallback="sometimes")


def test_cli_writes_the_fallback_of_each_utterance(exp_dir, tmp_path):
    utts = utterances()
    scp = write_npy_scp(tmp_path, utts)
    main(["--exp_dir", str(exp_dir), "--data_path_and_name_and_type", f"{scp},speech,npy", "--fallback", "ctc",
          "--fallback_threshold", "100", "--output_dir", str(tmp_path / "out")])
    reasons = read_kaldi(tmp_path / "out" / "1best_recog" / "fallback")
    assert sorted(reasons) == sorted(utts) and set(reasons.values()) <= {"-", "loop", "length", "ctc_disagreement"}


def test_word_times_are_monotonic_inside_the_audio_and_written_as_ctm(exp_dir, tmp_path):
    s2t = Speech2TextLLM.from_pretrained(exp_dir)
    utts = utterances(lengths=(90, 60))
    for key, speech in utts.items():
        text = "yes no seven"  # any text can be aligned on the audio (3 words, a few tokens, 20+ frames)
        times = s2t.word_times(speech, text)
        assert [t.word for t in times] == text.split()
        seconds = len(speech) * 0.01
        assert all(0 <= t.start <= t.end <= seconds + 1e-6 for t in times)
        assert all(a.end <= b.start + 1e-6 for a, b in zip(times, times[1:]))
        assert all(t.confidence <= 0 for t in times)
    with pytest.raises(ValueError, match="cannot be aligned"):
        s2t.word_times(utts["spk-utt1"][:8], "yes no seven eight nine zero one two three four five six")
    scp = write_npy_scp(tmp_path, utts)
    main(["--exp_dir", str(exp_dir), "--data_path_and_name_and_type", f"{scp},speech,npy", "--word_times", "true",
          "--maxlenratio", "0.1", "--maxlen_offset", "1", "--output_dir", str(tmp_path / "out")])  # short 1-bests
    hyps = read_kaldi(tmp_path / "out" / "1best_recog" / "text")
    ctm = [line.split() for line in (tmp_path / "out" / "1best_recog" / "ctm").read_text().splitlines()]
    assert [w for *_, w, _ in ctm] == [w for k in sorted(hyps) for w in hyps[k].split()]
    for utt, channel, start, dur, word, conf in ctm:
        assert channel == "1" and float(dur) >= 0 and 0 <= float(conf) <= 1
        assert float(start) + float(dur) <= len(utts[utt]) * 0.01 + 1e-6


@pytest.mark.parametrize("engine", ["onnxruntime"])  # OpenVINO: the CLI test below and test/decode/test_engine.py
def test_an_exported_llm_engine_decodes_as_the_hf_model_in_every_search(exp_dir, engine):
    pytest.importorskip(engine)
    utts = utterances(lengths=(60, 35, 90))
    for options in (dict(), dict(speculative=True, draft_window=3), dict(beam_size=3, ctc_weight=0.3)):
        ref = Speech2TextLLM.from_pretrained(exp_dir, **options)
        fast = Speech2TextLLM.from_pretrained(exp_dir, llm_engine=engine, llm_engine_dir=None, **options)
        assert fast.llm is not fast.model.llm and type(fast.llm).__name__.lower().startswith(engine[:4])
        for feats in utts.values():
            (text, ids, score), = ref(feats)
            (f_text, f_ids, f_score), = fast(feats)
            assert (f_text, f_ids) == (text, ids) and f_score == pytest.approx(score, abs=1e-3)


def test_cli_exports_the_llm_once_beside_the_model_file(exp_dir, tmp_path):
    pytest.importorskip("openvino")
    import shutil

    exp = shutil.copytree(exp_dir, tmp_path / "exp")
    scp = write_npy_scp(tmp_path, utterances())
    for job in (1, 2):
        main(["--exp_dir", str(exp), "--data_path_and_name_and_type", f"{scp},speech,npy", "--llm_engine", "openvino",
              "--llm_precision", "int8", "--output_dir", str(tmp_path / f"out{job}")])
    export = exp / "export" / "openvino_int8_valid.acc.ave"
    assert (export / "engine.json").is_file() and (export / "llm.xml").is_file()
    assert read_kaldi(tmp_path / "out1" / "1best_recog" / "text") == read_kaldi(tmp_path / "out2" / "1best_recog" / "text")
    assert len(read_kaldi(tmp_path / "out1" / "1best_recog" / "text")) == 3


def test_a_model_file_that_would_run_code_is_refused_by_from_pretrained(exp_dir, tmp_path):
    import os
    import pickle
    import shutil

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    exp = shutil.copytree(exp_dir, tmp_path / "exp")
    state = torch.load(exp / "valid.acc.ave.pth")
    state["hostile"] = Hostile()
    with open(exp / "valid.acc.ave.pth", "wb") as f:
        pickle.dump(state, f)  # torch.load reads a plain pickle too: the code would run on load
    with pytest.raises(RuntimeError, match="holds Python objects that a model file should not"):
        Speech2TextLLM.from_pretrained(exp)
    assert not (tmp_path / "pwned").exists()
