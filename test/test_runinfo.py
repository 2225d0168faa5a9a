"""meta.json bookkeeping of runs: merged fields, wall time summed over resumed runs, one writer under DDP."""
import json

from espnet_llm.runinfo import record_run, update_meta


def test_update_meta_merges(tmp_path):
    update_meta(tmp_path, a=1)
    assert update_meta(tmp_path, b=2) == {"a": 1, "b": 2}
    assert json.loads((tmp_path / "meta.json").read_text()) == {"a": 1, "b": 2}


def test_record_run_sums_wall_time_and_keeps_fields(tmp_path):
    update_meta(tmp_path, train_wall_s=100.0)
    with record_run(tmp_path, "train", encoder="conformer"):
        pass
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["encoder"] == "conformer" and 100.0 <= meta["train_wall_s"] < 101.0
    assert meta["train_peak_rss_gib"] > 0 and meta["nproc"] >= 1


def test_only_rank_0_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with record_run(tmp_path, "train"):
        pass
    assert not (tmp_path / "meta.json").exists()


def test_record_decode_times_the_loop_apart_from_loading(tmp_path):
    import json
    import time

    from espnet_llm.runinfo import record_decode

    (tmp_path / "meta.json").write_text(json.dumps({"decode_s": 99.0, "other": 1}))
    with record_decode(tmp_path) as cost:
        time.sleep(0.05)
        cost["loaded"] = time.time()
        time.sleep(0.1)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert 0.04 < meta["load_s"] < 0.1 and 0.09 < meta["decode_s"] < 0.2 and meta["other"] == 1
    assert meta["decode_threads"] >= 1 and meta["decode_peak_rss_gib"] > 0
    # a decoding that fails records nothing
    try:
        with record_decode(tmp_path / "failed"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert not (tmp_path / "failed" / "meta.json").exists()
