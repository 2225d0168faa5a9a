"""The whole AN4 recipe, stages 1-13, on a tiny configuration: 30 utterances a set, a 1-block conformer AM,
a tiny Llama (built from a config) as the LLM, 1 epoch each, every decoding mode (ESPnet beam search, three
AM + LLM fusions, the speech LLM with greedy search) and sclite scoring into RESULTS.md.

It checks that every stage runs and hands the right files to the next, not that the tiny models recognise
anything. The recipe is copied into tmp_path, so the real egs/an4/asr1 outputs are never touched.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

AN4 = Path(__file__).resolve().parents[3] / "shared" / "data" / "an4"
FUSION = "conf/decode_asr_fusion_delayed.yaml conf/decode_asr_rescore_nbest10.yaml conf/decode_asr_fusion_labelwise.yaml"


@pytest.mark.skipif(not (AN4 / "etc").is_dir(), reason=f"AN4 not found at {AN4}")
def test_an4_recipe_end_to_end_tiny(recipe, tiny_llm_dir):
    args = [
        "--subset", "30", "--test_sets", "test", "--llm_test_sets", "test librivox", "--llm_input", "fbank", "--nj", "2", "--inference_nj", "2", "--nthreads", "1",
        "--asr_config", "conf/tuning/train_asr_tiny.yaml", "--asr_inference_config", "conf/decode_asr_tiny.yaml",
        "--fusion_inference_configs", FUSION, "--text_llm_args", "--max_steps 2 --batch_size 4",
        "--llm", str(tiny_llm_dir), "--llm_name", "tiny", "--llm_init_encoder", "false",
        "--llm_asr_first_config", "conf/tuning/train_llm_asr_tiny.yaml",  # two-stage speech LLM training
        "--llm_asr_config", "conf/tuning/train_llm_asr_tiny_ft.yaml", "--llm_inference_config", "conf/decode_llm_greedy.yaml",
        "--local_data_opts", "--synth_utts 40", "--llm_train_extra_sets", "synth",  # + TTS speech for the LLM
    ]
    env = dict(os.environ, AN4_ROOT=str(AN4), LIBRIVOX_ROOT=str(AN4.parent / "librivox-clips"),
               LIBRISPEECH_TEXT=str(AN4.parent / "text" / "librispeech-dev-clean"))
    result = subprocess.run([str(recipe / "run.sh"), *args], cwd=recipe, capture_output=True, text=True,
                            timeout=1800, env=env, check=False)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    for stage in range(1, 14):
        assert f"Stage {stage}:" in result.stdout, f"stage {stage} did not run"

    assert len((recipe / "data/train_sub30/text").read_text().splitlines()) == 30
    assert len((recipe / "data/train_sub30_sp/text").read_text().splitlines()) == 90
    synth = (recipe / "data/synth/text").read_text().splitlines()
    assert len(synth) == 40
    # the default voices: all three engines speak
    assert {line.split("-", 1)[0] for line in synth} == {"espeak", "flite", "festival"}
    # the speech LLM trains on AN4 + the synthetic speech; the AM on AN4 alone
    llm_train = (recipe / "data/train_sub30_synth_sub30/text").read_text().splitlines()
    synth_ids = {line.split()[0] for line in synth}
    assert len(llm_train) == 60 and sum(line.split()[0] in synth_ids for line in llm_train) == 30
    assert len((recipe / "dump/fbank/train_sub30_synth_sub30/utt2num_samples").read_text().splitlines()) == 60
    assert "data/train_sub30_synth_sub30/text" in (recipe / "exp/llm_asr_tiny_tiny_synth/train.log").read_text()
    assert (recipe / "exp/asr_stats_fbank/train/feats_stats.npz").is_file()
    assert (recipe / "exp/asr_tiny/valid.acc.ave.pth").is_file()
    assert (recipe / "exp/llm/tiny").is_symlink()
    assert (recipe / "exp/llm_asr_tiny_tiny_synth/valid.acc.ave.pth").is_file()
    # the second stage starts from the first's model, its encoder at a tenth of the learning rate
    second = (recipe / "exp/llm_asr_tiny_ft_tiny_synth/train.log").read_text()
    assert "Loading pretrained params from exp/llm_asr_tiny_tiny_synth/valid.acc.ave.pth" in second
    assert "optimizer: encoder lr 0.0002 (0.1 x 0.002)" in second
    assert (recipe / "exp/llm_asr_tiny_ft_tiny_synth/valid.acc.ave.pth").is_file()

    decodes = sorted(p.parent.parent.name for p in recipe.glob("exp/*/decode_*/test_sub30/text"))
    assert decodes == ["decode_asr_fusion_delayed_tiny_valid.acc.ave", "decode_asr_fusion_labelwise_tiny_valid.acc.ave",
                       "decode_asr_rescore_nbest10_tiny_valid.acc.ave", "decode_asr_tiny_valid.acc.ave",
                       "decode_llm_greedy_valid.acc.ave"]
    fusion = recipe / "exp/asr_tiny/decode_asr_fusion_labelwise_tiny_valid.acc.ave"
    assert json.loads((fusion / "meta.json").read_text()) == {
        "decode_config": "conf/decode_asr_fusion_labelwise.yaml", "fusion_llm": "exp/llm_text_an4_bpe30_tiny"}
    job = json.loads((fusion / "test_sub30/logdir/output.1/meta.json").read_text())
    assert job["decode_s"] > 0 and job["load_s"] > 0
    for text in recipe.glob("exp/*/decode_*/test_sub30/text"):
        ids = [line.split(maxsplit=1)[0] for line in text.read_text().splitlines()]
        assert len(ids) == 30 and ids == sorted(ids), text
        result_json = json.loads((text.parent / "score_wer" / "result.json").read_text())
        assert result_json["Snt"] == 30 and result_json["Wrd"] > 30
        assert "Sum/Avg" in (text.parent / "score_cer" / "result.txt").read_text()
    llm_decode = recipe / "exp/llm_asr_tiny_ft_tiny_synth/decode_llm_greedy_valid.acc.ave/test_sub30"
    assert len((llm_decode.parent / "librivox_sub30" / "text").read_text().splitlines()) == 5
    assert len((llm_decode / "ctc_disagreement").read_text().splitlines()) == 30

    results = (recipe / "RESULTS.md").read_text()
    assert "- exp dir: `exp/llm_asr_tiny_ft_tiny_synth`, decode dir: `decode_llm_greedy_valid.acc.ave`" in results
    assert results.index("\n## speech LLM:") < results.index("\n## conformer CTC/attention AM")  # the default first
    assert "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|" in results.replace(" ", "")
    # the run's wall time is recorded with its command line (the recipe's total time comes from this file)
    date, stages, seconds, command = (recipe / "exp/run_times.tsv").read_text().splitlines()[-1].split("\t")
    assert stages == "1-13" and int(seconds) > 0 and "--subset 30" in command and "--stage " not in command

    # A rerun of finished stages redoes them cleanly (features and splits are skipped, not corrupted).
    rerun = subprocess.run([str(recipe / "run.sh"), *args, "--stage", "3", "--stop_stage", "4"], cwd=recipe,
                           capture_output=True, text=True, timeout=600, env=env, check=False)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]

    # A model retrained after decoding (newer than the texts and the split outputs) is decoded again, every split:
    # stale split outputs must not be merged into a "new" text.
    model = (recipe / "exp/llm_asr_tiny_ft_tiny_synth/valid.acc.ave.pth").resolve()
    old_split = (llm_decode / "logdir/output.1/1best_recog/text").stat().st_mtime
    os.utime(model, (old_split + 10, old_split + 10))
    redo = subprocess.run([str(recipe / "run.sh"), *args, "--llm_test_sets", "test", "--stage", "11",
                           "--stop_stage", "11"], cwd=recipe, capture_output=True, text=True, timeout=600, env=env,
                          check=False)
    assert redo.returncode == 0, redo.stdout[-3000:] + redo.stderr[-3000:]
    assert "Stage 11: Decoding:" in redo.stdout
    for n in (1, 2):
        assert (llm_decode / f"logdir/output.{n}/1best_recog/text").stat().st_mtime > old_split + 10
        assert (llm_decode / f"logdir/decode.{n}.1.log").is_file()  # run.pl kept the first run's log

    # Stage 14 packs every trained system; a packed speech LLM transcribes from anywhere, by the console script
    packed = subprocess.run([str(recipe / "run.sh"), *args, "--stage", "14", "--stop_stage", "14"], cwd=recipe,
                            capture_output=True, text=True, timeout=600, env=env, check=False)
    assert packed.returncode == 0, packed.stdout[-3000:] + packed.stderr[-3000:]
    archive = recipe / "exp/llm_asr_tiny_ft_tiny_synth/packed.zip"
    assert archive.is_file() and (recipe / "exp/asr_tiny/packed.zip").is_file()
    import soundfile

    elsewhere = recipe.parent.parent.parent / "elsewhere"
    elsewhere.mkdir()
    wav = (recipe / "data/test_sub30/wav.scp").read_text().split("\n")[0].split(maxsplit=1)[1]
    audio, rate = soundfile.read(wav if os.path.isabs(wav) else recipe / wav)
    soundfile.write(elsewhere / "some.flac", audio, rate)
    cli = Path(sys.executable).parent / "espnet-llm-transcribe"
    out = subprocess.run([str(cli), str(archive), "some.flac"], cwd=elsewhere, capture_output=True, text=True,
                         timeout=600, env=dict(env, ESPNET_LLM_CACHE=str(elsewhere / "cache")), check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("some.flac")

    # The comparison's machinery (run_compare.sh): an AM on the unperturbed training set with its CTC best path, a
    # fusion tuned on dev by a grid, a randomly initialised LLM as the speech LLM's decoder and the fusion LM, and
    # RESULTS.md led by the comparison table. Trained systems are not trained again.
    compare = [*args, "--llm_name", "tiny-random", "--llm_random_init", "true", "--asr_speed_perturb", "false",
               "--asr_inference_config", "conf/decode_asr_tiny.yaml conf/decode_asr_ctc_greedy.yaml",
               "--fusion_inference_configs", "conf/decode_asr_fusion_delayed.yaml",
               "--fusion_tune_grid", "lm_weight=0.1,0.5", "--llm_asr_first_config", "", "--llm_test_sets", "test",
               "--test_sets", "test dev", "--asr_tune_grid", "penalty=0,1",
               "--results_compare", "Tiny=exp/asr_tiny_nosp,exp/llm_asr_tiny_ft_tiny_synth,exp/llm_asr_tiny_ft_tiny-random_synth"]
    run = subprocess.run([str(recipe / "run.sh"), *compare, "--stage", "5"], cwd=recipe, capture_output=True,
                         text=True, timeout=1200, env=env, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert json.loads((recipe / "exp/llm/tiny-random/random_init.json").read_text())["seed"] == 0
    assert "data/train_sub30/text,text,text" in (recipe / "exp/asr_tiny_nosp/train.log").read_text()
    assert (recipe / "exp/llm_text_an4_tiny-random/.done").is_file()
    # stage 8 tunes only the text LLMs the fusions use: delayed fusion reads words, no LLM on the AM's units
    assert [p.name for p in (recipe / "exp").glob("llm_text_an4*tiny-random")] == ["llm_text_an4_tiny-random"]
    assert (recipe / "exp/llm_asr_tiny_ft_tiny-random_synth/valid.acc.ave.pth").exists()
    grid = recipe / "exp/asr_tiny_nosp/fusion_tune_tiny-random"
    rows = (grid / "decode_asr_fusion_delayed_grid.md").read_text().splitlines()
    assert len(rows) == 4 and sum("(chosen)" in row for row in rows) == 1
    assert (grid / "decode_asr_fusion_delayed_devtuned.yaml").read_text().startswith("# Tuned on dev_sub30")
    tuned = recipe / "exp/asr_tiny_nosp/decode_asr_fusion_delayed_devtuned_tiny-random_valid.acc.ave"
    assert len((tuned / "test_sub30/text").read_text().splitlines()) == 30
    # dev: the chosen grid point's decoding, copied, not decoded a second time
    chosen = (grid / "decode_asr_fusion_delayed_devtuned.yaml").read_text().split("# Decoded in: ")[1].split("\n")[0]
    assert (tuned / "dev_sub30/text").read_text() == (recipe / chosen / "dev_sub30/text").read_text()
    assert f"-> {tuned.relative_to(recipe)}/dev_sub30/text" not in run.stdout
    assert f"{tuned.relative_to(recipe)}/dev_sub30: the chosen grid point's decoding ({chosen}/dev_sub30)" in run.stdout
    assert not (tuned.parent / "decode_tune_asr_fusion_delayed_lm_weight0.1_tiny-random_valid.acc.ave/test_sub30").exists()
    # the AM alone tuned the same way (--asr_tune_grid): its own grid, a tuned decoding of the test sets
    am_grid = (recipe / "exp/asr_tiny_nosp/am_tune/decode_asr_tiny_grid.md").read_text().splitlines()
    assert len(am_grid) == 4 and sum("(chosen)" in row for row in am_grid) == 1
    am_tuned = recipe / "exp/asr_tiny_nosp/decode_asr_tiny_devtuned_valid.acc.ave"
    assert len((am_tuned / "test_sub30/text").read_text().splitlines()) == 30
    assert json.loads((am_tuned / "meta.json").read_text())["decode_config"].endswith("am_tune/decode_asr_tiny_devtuned.yaml")
    assert (recipe / "exp/asr_tiny_nosp/decode_asr_ctc_greedy_valid.acc.ave/test_sub30/score_wer/result.json").is_file()
    results = (recipe / "RESULTS.md").read_text()
    table = results[results.index("## Comparison"):results.index("## Summary")]
    assert "|**Tiny**|" in table and "`ctc_greedy`" in table and "tuned on dev (lm_weight" in table
    assert "`tiny tuned on dev (penalty " in table  # the AM alone, decode_asr_tiny.yaml tuned
    assert "+ tiny-random|" in table and "|speech LLM|" in table.replace(" (test_sub30)", "")
    assert "decode_tune_" not in results
    again = subprocess.run([str(recipe / "run.sh"), *compare, "--stage", "6", "--stop_stage", "6"], cwd=recipe,
                           capture_output=True, text=True, timeout=600, env=env, check=False)
    assert again.returncode == 0 and "is trained by this config and command: skipping" in again.stdout
