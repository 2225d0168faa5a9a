"""espnet_llm.bin.make_rirs: simulated room impulse responses for ESPnet's rir_scp."""
import numpy as np
import pytest
import soundfile

from espnet_llm.bin import make_rirs

pra = pytest.importorskip("pyroomacoustics")


def test_rooms_are_seeded_feasible_and_keep_away_from_walls():
    rooms = make_rirs.draw_rooms(50, seed=3, room_size=[3.0, 10.0], rt60=[0.15, 0.6])
    assert rooms == make_rirs.draw_rooms(50, seed=3, room_size=[3.0, 10.0], rt60=[0.15, 0.6])
    assert rooms != make_rirs.draw_rooms(50, seed=4, room_size=[3.0, 10.0], rt60=[0.15, 0.6])
    for room in rooms:
        for d, s, m in zip(room["dims"], room["source"], room["mic"]):
            assert 0.5 <= s <= d - 0.5 and 0.5 <= m <= d - 0.5
        assert 0.15 <= room["rt60"] <= 0.6
        absorption, _ = pra.inverse_sabine(room["rt60"], room["dims"])  # raises when walls cannot be that dry
        assert 0.0 < absorption < 1.0


def test_large_rooms_get_the_driest_feasible_rt60():
    """Sabine bounds how dry a large room can be: a room that cannot reach the asked range (with a 5 % margin on
    wall absorption 1) gets the driest RT60 it can have, which pyroomacoustics accepts and 5 % less it refuses."""
    rooms = make_rirs.draw_rooms(200, seed=0, room_size=[3.0, 40.0], rt60=[0.1, 0.15])
    raised = [r for r in rooms if r["rt60"] > 0.15]
    assert 0 < len(raised) < len(rooms)
    for room in rooms:
        absorption, _ = pra.inverse_sabine(room["rt60"], room["dims"])
        assert 0.0 < absorption < 1.0 and room["rt60"] >= 0.1
    for room in raised:
        with pytest.raises(ValueError, match="too large"):
            pra.inverse_sabine(0.15 / 1.05, room["dims"])
        with pytest.raises(ValueError, match="too large"):
            pra.inverse_sabine(0.999 * room["rt60"] / 1.05, room["dims"])


def test_writes_rirs_that_decay_with_the_drawn_rt60_and_resumes(tmp_path):
    out = tmp_path / "rirs"
    make_rirs.main(["--out_dir", str(out), "--num_rirs", "3", "--rt60", "0.2", "0.5", "--room_size", "3", "5"])
    lines = (out / "wav.scp").read_text(encoding="utf-8").splitlines()
    assert [line.split()[0] for line in lines] == ["rir0000", "rir0001", "rir0002"]
    rows = (out / "rirs.tsv").read_text(encoding="utf-8").splitlines()[1:]
    for line, row in zip(lines, rows):
        rir, fs = soundfile.read(line.split()[1])
        assert fs == 16000 and abs(abs(rir[0]) - 1.0) < 1e-3  # starts at the direct path, peak 1
        rt60 = float(row.split("\t")[4])
        energy = np.cumsum(rir[::-1] ** 2)[::-1]  # Schroeder backward integration
        decay_db = 10 * np.log10(energy / energy[0] + 1e-12)
        t20 = (np.argmax(decay_db < -25) - np.argmax(decay_db < -5)) / fs * 3  # T20 extrapolated to 60 dB
        assert 0.4 * rt60 < t20 < 2.0 * rt60, (rt60, t20)
    first = (out / "audio" / "rir0000.wav").stat().st_mtime_ns
    make_rirs.main(["--out_dir", str(out), "--num_rirs", "3", "--rt60", "0.2", "0.5", "--room_size", "3", "5"])
    assert (out / "audio" / "rir0000.wav").stat().st_mtime_ns == first  # kept on a rerun


def test_bad_ranges_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        make_rirs.main(["--out_dir", str(tmp_path), "--rt60", "0.6", "0.2"])
    with pytest.raises(SystemExit):
        make_rirs.main(["--out_dir", str(tmp_path), "--room_size", "1", "3"])
