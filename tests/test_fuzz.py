"""Seeded mutation fuzzer: valid photos of every format Pillow here reads and writes, corrupted,
through ``dlnet colorize`` in a subprocess with a time limit.

Each corrupted file gives an output or exactly one line on stderr naming it: never a traceback,
never a crash or a hang, never a changed input. CI runs a few cases per format (seconds); fuzz
longer with another seed and more cases, e.g.

    DLNET_FUZZ_SEED=$RANDOM DLNET_FUZZ_CASES=100 .venv/bin/python -m pytest -q tests/test_fuzz.py

A failure prints the seed, so the same files can be made again (:func:`mutants`).
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from _tiny_model import tiny_model_file
from bad_inputs import seeds

SEED = int(os.environ.get("DLNET_FUZZ_SEED", "0"))
CASES = int(os.environ.get("DLNET_FUZZ_CASES", "3"))  # mutants per format
CLI = "import sys; from dlnet.apps.cli import main; sys.exit(main(sys.argv[1:]))"


def _mutate(blob: bytes, rng: random.Random) -> bytes:
    """One to three random mutations, each of a kind that has broken decoders before: bit
    flips, bytes set to edge values, a cut, a chunk repeated or dropped, a header field changed."""
    data = bytearray(blob)
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        i = rng.randrange(len(data))
        kind = rng.randrange(6)
        if kind == 0:  # bit flips anywhere
            for _ in range(rng.randint(1, 8)):
                j = rng.randrange(len(data))
                data[j] ^= 1 << rng.randrange(8)
        elif kind == 1:  # edge values, mostly in the header
            j = rng.randrange(min(len(data), 64)) if rng.random() < 0.7 else i
            data[j] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF])
        elif kind == 2:  # cut short
            del data[i:]
        elif kind == 3:  # a chunk repeated
            n = rng.randint(1, 256)
            data[i:i] = data[i:i + n]
        elif kind == 4:  # a chunk dropped
            del data[i:i + rng.randint(1, 256)]
        else:  # a 16- or 32-bit field in the header set large
            j = rng.randrange(min(len(data), 48))
            data[j:j + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\xff\xff", b"\xff\xff"])
    return bytes(data)


def mutants(seed: int = SEED, cases: int = CASES) -> dict[str, bytes]:
    """``{file name: corrupted bytes}``: ``cases`` mutants of each format's seed photo."""
    rng = random.Random(seed)
    out = {}
    for fmt, blob in seeds().items():
        suffix = fmt.lower()
        for n in range(cases):
            out[f"{fmt}-{n:03d}.{suffix}"] = _mutate(blob, rng)
    return out


def test_corrupted_files_give_an_output_or_one_line(tmp_path):
    files = mutants()
    assert len({name.split("-")[0] for name in files}) >= 10, "too few formats to fuzz"
    folder = tmp_path / "fuzz"
    folder.mkdir()
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    weights = tiny_model_file(tmp_path)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CLI, "colorize", "fuzz/*", "-o", "out", "--model", str(weights),
             "--size", "32", "--max-megapixels", "4"],
            cwd=tmp_path, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dlnet colorize hung on the mutants of seed {SEED} ({CASES} per format)")
    where = f"(seed {SEED}, {CASES} per format)"
    assert proc.returncode in (0, 1), f"exit {proc.returncode} {where}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, f"{where}\n{proc.stderr[-3000:]}"
    lines = proc.stderr.splitlines()
    named = [line.split(": ", 1)[0].removeprefix("fuzz/") for line in lines]
    assert all(line.startswith("fuzz/") and ": " in line for line in lines), f"{where} stray stderr:\n{proc.stderr}"
    assert len(set(named)) == len(named), f"a file with more than one line {where}"
    done, skipped, failed = (int(proc.stdout.split()[i]) for i in (0, 2, 4))
    assert (done, skipped, failed) == (len(files) - len(named), 0, len(named)), proc.stdout
    outputs = {p.stem for p in (tmp_path / "out" / "fuzz").iterdir()} if done else set()
    assert outputs == {Path(n).stem for n in files if n not in named}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} == before
