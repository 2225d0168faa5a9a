#!/usr/bin/env python3
"""Simulated room impulse responses for training-time reverberation (ESPnet's ``rir_scp``).

Usage:
    python -m espnet_llm.bin.make_rirs --out_dir data/rirs --num_rirs 200
    python -m espnet_llm.bin.make_rirs --out_dir data/rirs --num_rirs 200 --rt60 0.15 0.6 --seed 1

Shoebox rooms by pyroomacoustics' image-source method (Allen & Berkley 1979), as in Ko et al. 2017's simulated
RIRs: room length and width drawn in ``--room_size`` metres, height in 2.5-4 m, a reverberation time in ``--rt60``
seconds (wall absorption and reflection order from Sabine's formula, ``pyroomacoustics.inverse_sabine``), the
source and the microphone at least 0.5 m from every wall. Writes ``<out_dir>/audio/<id>.wav`` (16-bit, ``--fs``),
``<out_dir>/wav.scp`` (``<id> <path>``: what ``rir_scp`` / ``--llm_asr_args "--rir_scp ..."`` reads) and
``<out_dir>/rirs.tsv`` (each room's draw). The draw is seeded; a rerun keeps the files already written and
``wav.scp`` is replaced only when complete, so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import soundfile


def draw_rooms(num: int, seed: int, room_size: Sequence[float], rt60: Sequence[float]) -> List[Dict[str, object]]:
    """The seeded room draw: dims (m), rt60 (s), source and microphone positions (m), at least 0.5 m from walls."""
    rng = np.random.default_rng(seed)
    rooms = []
    for k in range(num):
        dims = [float(rng.uniform(*room_size)), float(rng.uniform(*room_size)), float(rng.uniform(2.5, 4.0))]
        source, mic = ([float(rng.uniform(0.5, d - 0.5)) for d in dims] for _ in range(2))
        # Sabine: RT60 = 24 ln(10) V / (c S a); a <= 1 bounds how dry a large room can be
        length, width, height = dims
        volume, surface = length * width * height, 2 * (length * width + length * height + width * height)
        driest = 1.05 * 24 * np.log(10) * volume / (343.0 * surface)
        low = max(rt60[0], driest)
        rooms.append(dict(
            id=f"rir{k:04d}", dims=dims, rt60=float(rng.uniform(low, max(low, rt60[1]))), source=source, mic=mic
        ))
    return rooms


def simulate(room: Dict[str, object], fs: int) -> np.ndarray:
    """One room's impulse response (Time,), float32, peak-normalised, starting at the direct path."""
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(room["rt60"], room["dims"])
    shoebox = pra.ShoeBox(room["dims"], fs=fs, materials=pra.Material(absorption), max_order=max_order)
    shoebox.add_source(room["source"])
    shoebox.add_microphone(room["mic"])
    shoebox.compute_rir()
    rir = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    rir = rir[int(np.argmax(np.abs(rir))):]  # no propagation delay: the reverberant copy stays aligned
    return (rir / np.max(np.abs(rir))).astype(np.float32)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--num_rirs", type=int, default=200)
    parser.add_argument("--fs", type=int, default=16000)
    parser.add_argument("--room_size", type=float, nargs=2, default=[3.0, 10.0], help="length/width range (m)")
    parser.add_argument("--rt60", type=float, nargs=2, default=[0.15, 0.6], help="reverberation time range (s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.num_rirs < 1:
        parser.error(f"--num_rirs must be >= 1, got {args.num_rirs}")
    lo, hi = args.room_size
    if not 1.2 <= lo <= hi:
        parser.error(f"--room_size: want 1.2 <= low <= high (0.5 m from each wall), got {lo} {hi}")
    if not 0.0 < args.rt60[0] <= args.rt60[1] <= 2.0:
        parser.error(f"--rt60: want 0 < low <= high <= 2 s, got {args.rt60}")
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        sys.exit("make_rirs: error: pyroomacoustics is not installed (tools/install.sh installs it)")

    audio_dir = args.out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rooms = draw_rooms(args.num_rirs, args.seed, args.room_size, args.rt60)
    scp, tsv = [], ["id\tlength_m\twidth_m\theight_m\trt60_s\tsamples"]
    for room in rooms:
        path = (audio_dir / f"{room['id']}.wav").resolve()
        if path.exists():
            samples = soundfile.info(str(path)).frames
        else:
            rir = simulate(room, args.fs)
            tmp = path.with_suffix(".tmp.wav")
            soundfile.write(str(tmp), rir, args.fs, subtype="PCM_16")
            os.replace(tmp, path)  # a killed run leaves no half-written RIR behind
            samples = len(rir)
        scp.append(f"{room['id']} {path}")
        tsv.append("\t".join([room["id"], *(f"{d:.2f}" for d in room["dims"]), f"{room['rt60']:.3f}", str(samples)]))
    for name, lines in (("rirs.tsv", tsv), ("wav.scp", scp)):
        tmp = args.out_dir / f".{name}.tmp"
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, args.out_dir / name)
    logging.info(f"{args.out_dir}/wav.scp: {len(scp)} simulated RIRs, RT60 {args.rt60[0]}-{args.rt60[1]} s")


if __name__ == "__main__":
    main()
