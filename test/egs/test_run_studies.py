"""egs/an4/asr1/run_studies.sh end to end on tiny models: real AN4 and LibriVox recordings, a tiny raw-audio speech
LLM with a CTC head and a tiny Whisper-encoder ESPnet AM (untrained), every step into RESULTS_studies.md.

It checks that each step builds its sets, decodes them with the options it names and that the report measures every
study from those decodes, not that the tiny models recognise anything."""
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
AN4_TEST = SHARED / "an4" / "audio" / "an4test_clstk"
WHISPER = dict(num_mel_bins=80, d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
               decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, vocab_size=100,
               max_source_positions=1500)


def write_set(d: Path, utts):
    """utts: (id, speaker, audio path, text) sorted by id."""
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("".join(f"{u} {p}\n" for u, _, p, _ in utts))
    (d / "text").write_text("".join(f"{u} {t}\n" for u, _, _, t in utts))
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _, _ in utts))
    spk2utt: dict = {}
    for u, s, _, _ in utts:
        spk2utt.setdefault(s, []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))


def an4(spk, n, text):
    return (f"{spk}-an{n}-b", spk, AN4_TEST / spk / f"an{n}-{spk}-b.flac", text)


@pytest.mark.skipif(not AN4_TEST.is_dir(), reason=f"AN4 not found at {AN4_TEST}")
def test_run_studies_measures_every_study_on_tiny_models(recipe, tiny_llm_dir, write_exp_dir):
    from espnet_llm.tasks.asr import ASRTask
    from espnet_llm.tasks.llm_asr import LLMASRTask

    data = recipe / "data"
    write_set(data / "test", [an4("fcaw", 406, "RUBOUT G M E F THREE NINE"), an4("fcaw", 407, "ERASE C Q Q F SEVEN"),
                              an4("fvap", 427, "ERASE E D Z E FIFTY SIX"), an4("fvap", 428, "ENTER EIGHT THIRTEEN")])
    write_set(data / "dev", [an4("fjlp", 416, "NO"), an4("fjlp", 417, "ENTER NINE ONE SIX NINE")])
    write_set(data / "train", [an4("fjlp", 418, "ENTER EIGHT NINETY SEVEN")])
    lv = SHARED / "librivox-clips" / "librivox"
    write_set(data / "librivox", [(f"lv-{n}", "lv", lv / f"sense_and_sensibility_01_austen_64kb-{n}.wav", t) for n, t in
                                  (("0880", "HE WAS NOT AN ILL DISPOSED YOUNG MAN"),
                                   ("0930", "HE MIGHT EVEN HAVE BEEN MADE AMIABLE HIMSELF"))])
    # the speech LLM: a 1-layer Whisper-architecture encoder on raw audio, the tiny Llama, a CTC head
    args = LLMASRTask.get_parser().parse_args([
        "--output_dir", "exp/llm_tiny", "--frontend", "none", "--input_size", "1", "--normalize", "none",
        "--encoder", "whisper", "--projector", "stack_linear", "--projector_conf", "stack=8",
        "--llm_conf", f"name_or_path={tiny_llm_dir}", "--llm_conf", "tuning=lora", "--model_conf", "ctc_weight=0.3"])
    args.encoder_conf = dict(whisper_config=WHISPER, freeze=False)
    torch.manual_seed(0)
    write_exp_dir(recipe / "exp/llm_tiny", args, LLMASRTask.build_model(args))
    # the reference aligner: ESPnet's ASR task with the project's Whisper encoder, character units
    tokens = ["<blank>", "<unk>", "<space>", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "<sos/eos>"]
    conf = dict(frontend=None, input_size=1, normalize=None, specaug=None, encoder="hf_whisper",
                encoder_conf=dict(whisper_config=WHISPER, freeze=False), decoder="transformer",
                decoder_conf=dict(attention_heads=2, linear_units=16, num_blocks=1), model_conf=dict(ctc_weight=0.3),
                token_list=tokens, token_type="char")
    (recipe / "am.yaml").write_text(yaml.safe_dump(conf))
    am_args = ASRTask.get_parser().parse_args(["--config", str(recipe / "am.yaml")])
    write_exp_dir(recipe / "exp/am_tiny", am_args, ASRTask.build_model(am_args))

    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(["./run_studies.sh", "--llm_exp", "exp/llm_tiny", "--am_exp", "exp/am_tiny",
                          "--thresholds", "0.5 0.9", "--distractors", "5", "--nthreads", "1", "--max_segment_seconds", "4",
                          "--split_pause_grid", "0.5 1.5", "--hotword_bonus_grid", "1 3",
                          "--distractor_texts", str(SHARED / "text" / "gutenberg" / "austen-*.txt")],
                         cwd=recipe, capture_output=True, text=True, timeout=1500, env=env, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for step in range(1, 7):
        assert f"Step {step}:" in run.stdout

    assert (data / "test_long/text").read_text().split("\n")[0] == "fcaw-long RUBOUT G M E F THREE NINE ERASE C Q Q F SEVEN"
    assert len((data / "test_all_long/reference_segments").read_text().splitlines()) == 4
    assert (data / "dev_long/text").read_text() == "fjlp-long NO ENTER NINE ONE SIX NINE\n"
    hotwords = (data / "hotwords/distractors.txt").read_text().splitlines()
    assert hotwords[:3] == ["THIRTEEN", "NOVEMBER", "DASHWOOD"] and len(hotwords) == 8
    studies = recipe / "exp/llm_tiny/studies"
    assert "--hotwords data/hotwords/biased.txt" in (studies / "hotwords_biased/test/command.txt").read_text()
    assert "--fallback joint --fallback_threshold 0.9" in (studies / "fallback_joint_t0.9/dev/command.txt").read_text()
    assert len((studies / "fallback_joint_t0.5/stress_nonspeech/1best_recog/fallback").read_text().splitlines()) >= 12
    # the pause rule: the grid on dev_long, the chosen value on the long test sets (the 8-s merge decodes as they were)
    for pause in ("0.5", "1.5"):
        command = (studies / f"longform_greedy_pause{pause}/dev_long/command.txt").read_text()
        assert f"--merge_segment_seconds 8 --split_pause_seconds {pause}" in command
    chosen = (studies / "longform_pause_greedy/test_long/command.txt").read_text().split()[-1]
    assert chosen in ("0.5", "1.5") and f"--split_pause_seconds {chosen}" in run.stdout
    assert "--split_pause_seconds" not in (studies / "longform_greedy/test_long/command.txt").read_text()
    # the reference alignment: one CTM line a word of every test utterance, in time order inside the audio
    ref_ctm = (recipe / "exp/am_tiny/align_valid.acc.ave/test/ctm").read_text().splitlines()
    assert [line.split()[4] for line in ref_ctm[:7]] == "RUBOUT G M E F THREE NINE".split()
    starts = [float(line.split()[2]) for line in ref_ctm[:7]]
    assert starts == sorted(starts) and all(float(line.split()[3]) >= 0 for line in ref_ctm)

    report = (recipe / "RESULTS_studies.md").read_text()
    for section in ("## Long recordings", "## Word times", "## Hotword biasing", "## CTC fallback against hallucination"):
        body = report.split(section, 1)[1].split("\n## ", 1)[0]
        assert "Not measured" not in body and "|---|" in body, (section, body)
    assert "|test_long|2|" in report and "|test_all_long|1|" in report and "|librivox_long|1|" in report
    rows = [line for line in report.split("## Long recordings", 1)[1].split("\n## ", 1)[0].splitlines()
            if line.startswith("|") and "--split_pause_seconds" in line]
    assert [r.split("|")[1] for r in rows] == ["dev_long", "dev_long", "test_long", "test_all_long", "librivox_long"]
    assert sum(r.endswith(" (dev grid: chosen)|") for r in rows) == 1
    assert all(r.endswith(f"--split_pause_seconds {chosen}`|") for r in rows[2:])
    # the hotword bonus: the grid on dev with its rare words, the chosen bonus on test
    assert (data / "hotwords/dev_rare.txt").read_text().splitlines() == ["NO", "ENTER", "NINE", "ONE", "SIX"]
    for bonus in ("1", "3"):
        assert f"--hotword_bonus {bonus}" in (studies / f"hotwords_grid_b{bonus}/dev/command.txt").read_text()
    bonus = (studies / "hotwords_biased/test/command.txt").read_text().split()[-1]
    assert bonus in ("1", "3") and f"--hotword_bonus {bonus}: the lowest WER" in run.stdout
    assert f"|test|3 phrases, bonus {bonus}|" in report and f"|test|3 phrases + 5 distractors, bonus {bonus}|" in report
    assert "|bonus|1|3|" in report and f"Chosen: {bonus}." in report
    # the VAD gate: every set, a row of the fallback table
    vad = (studies / "vadgate_greedy/stress_nonspeech/1best_recog/vad").read_text().splitlines()
    assert len(vad) >= 12 and {line.split()[1] for line in vad} <= {"speech", "no_speech"}
    assert "|none, VAD gate|" in report
    assert "|none|" in report and "|joint, threshold " in report
    assert (recipe / "RESULTS_studies_word_times.png").stat().st_size > 10000
    again = subprocess.run(["./run_studies.sh", "--llm_exp", "exp/llm_tiny", "--am_exp", "exp/am_tiny", "--step", "2",
                            "--stop_step", "2", "--max_segment_seconds", "4", "--split_pause_grid", "0.5 1.5"],
                           cwd=recipe, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert again.stdout.count("is decoded: skipping") == 11, again.stdout  # 5 + dev + 2 grid + 3 chosen
