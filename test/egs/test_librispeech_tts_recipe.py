"""The synthetic-speech recipe egs/librispeech_tts/asr1 end to end on a tiny configuration: 30 training sentences in the
13 classic voices and Piper's, 10 for dev, the LibriVox and cards clips as test sets, a tiny speech LLM in two stages
on a tiny Llama over fbank features (whose statistics come with a tiny AM; the recipe itself has none). It checks that the recipe's data prep and stages hand the right files on, not recognition."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "librivox-clips").is_dir(), reason=f"no {SHARED}/librivox-clips")
def test_librispeech_tts_recipe_tiny(tmp_path, tiny_llm_dir):
    for part in ("utils", "tools", "espnet_llm"):
        (tmp_path / part).symlink_to(REPO / part)
    shutil.copytree(REPO / "egs" / "TEMPLATE", tmp_path / "egs" / "TEMPLATE")
    for corpus in ("an4", "librispeech_tts"):
        shutil.copytree(REPO / "egs" / corpus / "asr1", tmp_path / "egs" / corpus / "asr1", symlinks=True,
                        ignore=shutil.ignore_patterns("data", "dump", "exp", "RESULTS*.md"))
    recipe = tmp_path / "egs" / "librispeech_tts" / "asr1"
    tiny = "../../an4/asr1/conf/tuning"
    env = dict(os.environ, LIBRIVOX_ROOT=str(SHARED / "librivox-clips"),
               LIBRISPEECH_TEXT=str(SHARED / "text" / "librispeech-dev-clean"), GUTENBERG_TEXT=str(SHARED / "text" / "gutenberg"))
    args = ["--local_data_opts", "--voice_utts 26 --piper_utts 4 --dev_utts 10 --num_rirs 0", "--nthreads", "1",
            "--llm", str(tiny_llm_dir), "--llm_input", "fbank", "--inference_nj", "1",
            # fbank input needs CMVN statistics, which stage 5 collects for an AM: the tiny one
            "--asr_config", f"{tiny}/train_asr_tiny.yaml", "--asr_inference_config", "../../an4/asr1/conf/decode_asr_tiny.yaml",
            "--llm_asr_first_config", f"{tiny}/train_llm_asr_tiny.yaml", "--llm_asr_config", f"{tiny}/train_llm_asr_tiny_ft.yaml",
            "--llm_inference_config", "conf/decode_llm_greedy.yaml"]
    result = subprocess.run([str(recipe / "run.sh"), *args], cwd=recipe, capture_output=True, text=True, timeout=1800,
                            env=env, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    speakers = {line.split()[1] for line in (recipe / "data/train/utt2spk").read_text().splitlines()}
    assert "piper-joe" in speakers and len(speakers) > 8  # the neural voice and most of the 13 others (a seeded draw)
    train = {line.split(maxsplit=1)[1] for line in (recipe / "data/train/text").read_text().splitlines()}
    dev = {line.split(maxsplit=1)[1] for line in (recipe / "data/dev/text").read_text().splitlines()}
    assert len(train) == 30 and len(dev) == 10 and not train & dev
    exp = recipe / f"exp/llm_asr_tiny_ft_{tiny_llm_dir.name}"
    for test_set, utts in (("librivox", 5), ("cards", 5)):
        text = exp / "decode_llm_greedy_valid.acc.ave" / test_set / "text"
        assert len(text.read_text().splitlines()) == utts
        assert (text.parent / "score_wer" / "result.json").is_file()
    results = (recipe / "RESULTS.md").read_text()
    assert "|`greedy`|librivox|5|" in results and "|`greedy`|cards|5|" in results
