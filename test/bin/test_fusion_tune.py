"""espnet_llm.bin.fusion_tune: the grid point with the lowest dev WER (sclite) becomes the tuned decoding config."""
import subprocess

from espnet_llm.bin.config_overlay import main as overlay
from espnet_llm.bin.fusion_tune import main

REF = {"u1": "ONE TWO THREE", "u2": "FOUR FIVE", "u3": "SIX"}


def decode(tmp_path, name, hyps):
    d = tmp_path / f"decode_{name}" / "dev"
    d.mkdir(parents=True)
    (d / "text").write_text("".join(f"{k} {v}\n" for k, v in hyps.items()))
    return d.parent


def test_the_lowest_dev_wer_wins_and_the_grid_is_recorded(tmp_path):
    base = tmp_path / "decode_asr_fusion_delayed.yaml"
    base.write_text("fusion: delayed\nllm: exp/llm_text_an4\nlm_weight: 0.3\npenalty: 0.0\nbeam_size: 10\n")
    (tmp_path / "ref").write_text("".join(f"{k} {v}\n" for k, v in REF.items()))
    configs, dirs = [], []
    for lm, hyps in (("0.1", {**REF, "u1": "ONE TOO THREE"}), ("0.3", REF), ("0.5", REF), ("0.7", {"u1": "ONE"})):
        config = tmp_path / "grid" / f"tune_delayed_lm_weight{lm}.yaml"
        overlay(["--base", str(base), "--set", f"lm_weight={lm}", "--set", "penalty=1", "--out", str(config)])
        configs.append(str(config))
        dirs.append(str(decode(tmp_path, f"tune_delayed_lm_weight{lm}", {k: v for k, v in hyps.items()})))
    out, table = tmp_path / "grid" / "decode_asr_fusion_delayed_devtuned.yaml", tmp_path / "grid" / "grid.md"
    assert main(["--configs", *configs, "--decode_dirs", *dirs, "--set", "dev", "--ref", str(tmp_path / "ref"),
                 "--out", str(out), "--table", str(table)]) == 0
    import yaml

    tuned = yaml.safe_load(out.read_text())
    assert tuned["lm_weight"] == 0.3 and tuned["penalty"] == 1 and tuned["fusion"] == "delayed"  # tie: the earlier
    assert out.read_text().startswith("# Tuned on dev (lowest WER of 4 grid points, 0.0 %): lm_weight=0.3, penalty=1.")
    assert f"\n# Decoded in: {dirs[1]}\n" in out.read_text()  # the recipe reuses the winner's dev decoding
    rows = table.read_text().splitlines()
    assert rows[0] == "|grid point|dev WER|#Sub|#Del|#Ins|"
    assert rows[2] == "|lm_weight=0.1, penalty=1|16.7|1|0|0|"
    assert rows[3] == "|lm_weight=0.3, penalty=1 (chosen)|0.0|0|0|0|"
    assert rows[5] == "|lm_weight=0.7, penalty=1|83.3|0|5|0|"  # u2, u3 missing: deleted
    # a grid point that was not decoded: a clear error, nothing written
    out.unlink()
    proc = subprocess.run(["python", "-m", "espnet_llm.bin.fusion_tune", "--configs", configs[0], "--decode_dirs",
                           str(tmp_path / "nowhere"), "--set", "dev", "--ref", str(tmp_path / "ref"), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "the grid point was not decoded" in proc.stderr and not out.exists()
