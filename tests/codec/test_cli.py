"""`lnrnn compress|decompress` and `score --adaptive`: files and pipes, the summary line, and every way a
container can be wrong giving one stderr line, exit 2 and no output file."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lnrnn.bpc import nats_to_bits
from lnrnn.cli import main
from lnrnn.codec import StepGraph, information, unpack
from lnrnn.codec.api import overhead_bound

TEXT = ("Compress me: the quick brown fox jumps over the lazy dog. " * 12).encode()
BLOCK = "256"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def packed(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    source = tmp_path / "text.txt"
    source.write_bytes(TEXT)
    target = tmp_path / "text.txt.lnrz"  # FILE -> FILE.lnrz beside it, FILE kept
    code, out, err = run(capsys, "compress", str(source), "--model", str(model_dir), "--block-size", BLOCK)
    assert code == 0 and out == ""
    assert err.count("\n") == 1 and f"{len(TEXT):,} -> {target.stat().st_size:,} bytes" in err
    assert "bits/byte" in err and "kB/s" in err
    blocks = -(-len(TEXT) // int(BLOCK))
    assert f"{blocks} blocks, 1 lane)" in err  # the layout: fewer than 16 blocks go in one lane
    assert source.read_bytes() == TEXT
    return target


def test_file_round_trip_and_summary(
    packed: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    restored = tmp_path / "restored.txt"
    code, out, err = run(capsys, "decompress", str(packed), "-o", str(restored), "--model", str(model_dir))
    assert code == 0 and out == "" and err.startswith("lnrnn decompress: ") and err.count("\n") == 1
    assert restored.read_bytes() == TEXT
    assert not list(tmp_path.glob("*.part"))  # the temporary file was renamed


@pytest.mark.slow
def test_pipes_in_a_subprocess(model_dir: Path) -> None:
    data = bytes(range(256)) * 3 + b"\x00\xff"
    base = [sys.executable, "-m", "lnrnn"]
    model = ["--model", str(model_dir), "--block-size", BLOCK]
    packed = subprocess.run([*base, "compress", *model], input=data, capture_output=True, timeout=120)
    assert packed.returncode == 0, packed.stderr
    assert packed.stdout[:4] == b"LNRZ"
    restored = subprocess.run(
        [*base, "decompress", "-", "--model", str(model_dir)],
        input=packed.stdout,
        capture_output=True,
        timeout=120,
    )
    assert restored.returncode == 0 and restored.stdout == data
    bad = subprocess.run(
        [*base, "decompress", "--model", str(model_dir)],
        input=packed.stdout[:-5],
        capture_output=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stdout == b""
    assert bad.stderr.decode().count("\n") == 1 and "truncated" in bad.stderr.decode()


def corrupt(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x10]) + blob[at + 1 :]


@pytest.mark.parametrize(
    "where", ["magic", "version", "header", "block table", "payload", "truncated", "extra"]
)
def test_bad_container_is_one_line_exit_2_and_no_output(
    where: str, packed: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = packed.read_bytes()
    header, _ = unpack(blob)
    table = header.overhead - 4 * header.n_blocks - 4  # where the block table starts
    bad = {
        "magic": lambda: corrupt(blob, 0),
        "version": lambda: corrupt(blob, 4),
        "header": lambda: corrupt(blob, 13),  # the original length
        "block table": lambda: corrupt(blob, table + 1),
        "payload": lambda: corrupt(blob, header.overhead + 6),
        "truncated": lambda: blob[: len(blob) // 2],
        "extra": lambda: blob + b"\x00",
    }[where]()
    path = tmp_path / "bad.lnrz"
    path.write_bytes(bad)
    target = tmp_path / "never.txt"
    code, out, err = run(capsys, "decompress", str(path), "-o", str(target), "--model", str(model_dir))
    assert code == 2 and out == ""
    assert err.startswith("lnrnn decompress: error: ") and err.count("\n") == 1, err
    assert not target.exists() and not list(tmp_path.glob("*.part"))
    expected = {
        "magic": "not an lnrnn compressed file",
        "version": "format version",
        "header": "corrupted header",
        "block table": "corrupted header or block table",
        "payload": "",  # the CRC, or the range decoder refusing the words
        "truncated": "truncated",
        "extra": "trailing data",
    }[where]
    assert expected in err
    if where == "payload":
        assert "checksum" in err or "corrupted payload" in err


def test_wrong_model_fails_before_decoding(
    packed: Path, other_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "never.txt"
    code, _, err = run(capsys, "decompress", str(packed), "-o", str(target), "--model", str(other_model_dir))
    assert code == 2 and "compressed with another model" in err and err.count("\n") == 1
    assert not target.exists()


def test_bad_arguments(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "compress", str(tmp_path / "missing"), "-c", "--model", str(model_dir))
    assert code == 2 and "cannot read" in err
    src = tmp_path / "a.txt"
    src.write_bytes(b"abc")
    code, _, err = run(capsys, "compress", str(src), "-c", "--model", str(model_dir), "--block-size", "0")
    assert code == 2 and "--block-size" in err
    code, _, err = run(capsys, "compress", str(src), "-c", "--model", str(tmp_path / "nomodel"))
    assert code == 2 and "does not exist" in err and err.count("\n") == 1


def test_adaptive_score_is_the_payload(
    packed: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`score --adaptive` reports the bits the payloads hold, less the range coder's final words."""
    source = tmp_path / "text.txt"
    code, out, _ = run(capsys, "score", str(source), "--model", str(model_dir), "--adaptive", "--json")
    result = json.loads(out)
    assert code == 0 and result["adaptive"] is True and result["bytes"] == len(TEXT)
    # the CLI scores with the default block size; the same function at the container's block size:
    header, _ = unpack(packed.read_bytes())
    graph = StepGraph.load(model_dir, header.precision)
    default_bits = nats_to_bits(information(TEXT, graph))
    assert result["bits"] == pytest.approx(default_bits, rel=1e-9)
    bits = nats_to_bits(information(TEXT, graph, block_size=header.block_size))
    payload = sum(header.payload_sizes)
    assert packed.stat().st_size - header.overhead == payload
    # the range coder flushes up to two 32-bit words per block: measured 2-3 bytes per block on README.md
    assert -header.n_blocks <= payload - math.ceil(bits / 8) <= overhead_bound(header.n_blocks)
    code, out, _ = run(capsys, "score", str(source), "--model", str(model_dir), "--adaptive")
    assert code == 0 and "lnrnn adaptive" in out and "gzip -9" in out


def test_gzip_conventions(
    packed: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No overwrite without -f, FILE.lnrz -> FILE, -t writes nothing, -c, several files in one call (a bad
    one is one line and exit 2 while the others are still done), and names that cannot be mapped."""
    model = ["--model", str(model_dir)]
    source = tmp_path / "text.txt"
    code, _, err = run(capsys, "compress", str(source), *model)
    assert code == 2 and "already exists; use -f" in err and err.count("\n") == 1
    assert run(capsys, "compress", str(source), "-f", "-q", *model, "--block-size", BLOCK)[:3] == (0, "", "")

    source.unlink()  # decompress recreates it from text.txt.lnrz, keeping the archive
    code, out, err = run(capsys, "decompress", str(packed), *model)
    assert code == 0 and out == "" and source.read_bytes() == TEXT and packed.exists()
    code, _, err = run(capsys, "decompress", str(packed), *model)
    assert code == 2 and "already exists" in err

    code, out, err = run(capsys, "decompress", "-t", str(packed), *model)
    assert code == 0 and out == "" and "OK" in err and not list(tmp_path.glob("*.part"))
    code, out, _ = run(capsys, "decompress", "-c", str(packed), *model)
    assert code == 0 and out == TEXT.decode()

    other = tmp_path / "other.txt"
    other.write_bytes(b"another file")
    missing = tmp_path / "missing.txt"
    code, _, err = run(capsys, "compress", str(other), str(missing), *model)
    assert code == 2 and err.count("lnrnn compress: error: cannot read") == 1
    assert (tmp_path / "other.txt.lnrz").exists()  # done although the next file failed

    code, _, err = run(capsys, "decompress", str(source), *model)
    assert code == 2 and "does not end in .lnrz" in err
    code, _, err = run(capsys, "compress", str(packed), *model)
    assert code == 2 and "already ends in .lnrz" in err
    code, _, err = run(capsys, "compress", "-c", str(source), str(other), *model)
    assert code == 2 and "-c takes one input" in err


def test_archives_and_restored_files_keep_the_input_permissions(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As gzip does: a private file's archive is private too, and a shared one's is readable (the temporary
    file the output is written through would otherwise leave every output 0600)."""
    model = ["--model", str(model_dir), "--block-size", BLOCK, "-q"]
    for mode in (0o600, 0o644):
        source = tmp_path / f"text-{mode:o}.txt"
        source.write_bytes(TEXT)
        source.chmod(mode)
        assert run(capsys, "compress", str(source), *model)[0] == 0
        archive = source.with_name(source.name + ".lnrz")
        assert archive.stat().st_mode & 0o777 == mode
        source.unlink()
        assert run(capsys, "decompress", str(archive), "--model", str(model_dir), "-q")[0] == 0
        assert source.read_bytes() == TEXT and source.stat().st_mode & 0o777 == mode
