"""The decoder finds an archive's model by the fingerprint in its header (``lnrnn.codec.registry``): among
several shipped models, lazily and once per file; an explicit --model is still checked; a model that is not
installed, decoded bytes that fail the CRC and a future format version are each one line and exit 2."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lnrnn.cli import main
from lnrnn.codec import StepGraph, compress, container, registry, unpack
from lnrnn.codec.api import producer
from lnrnn.contract import STEP_FILE, STEP_INT8_FILE
from lnrnn.serve.app import create_app
from tests.helpers import TestClient, error, settings_for

TEXT = b"Find my model by its fingerprint, then decode me byte for byte. " * 4
REPO = Path(__file__).resolve().parents[2]
OLD = "lnrnn 0.0.1, onnxruntime 1.0.0, numpy 1.0.0, constriction 0.1.0"  # a producer that is not this one
OCTET = {"content-type": "application/octet-stream"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_exit_2(code: int, out: str, err: str) -> str:
    assert code == 2 and out == "", (code, err)
    assert err.startswith("lnrnn decompress: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def root(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, other_model_dir: Path, int8_dir: Path
) -> Path:
    """A models tree as the package has it: alpha and beta (fp32 only), gamma (fp32 and int8)."""
    root = tmp_path_factory.mktemp("models")
    for name, source in (("alpha", other_model_dir), ("beta", model_dir), ("gamma", int8_dir)):
        shutil.copytree(source, root / name)
    (root / "not-a-model").mkdir()  # a directory without a step graph is not a candidate
    (root / "notes.txt").write_text("a file beside the models")
    return root


@pytest.fixture
def shipped(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tree is what the decoder searches; no configured model."""
    monkeypatch.setenv(registry.ENV, str(root))
    monkeypatch.delenv("LNRNN_MODEL_DIR", raising=False)
    monkeypatch.delenv("LNRNN_PRECISION", raising=False)
    return root


@pytest.fixture
def empty_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other_model_dir: Path) -> Path:
    """Nothing shipped, and a configured model that made none of the archives here."""
    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv(registry.ENV, str(empty))
    monkeypatch.setenv("LNRNN_MODEL_DIR", str(other_model_dir))
    return empty


def fp(path: Path) -> bytes:
    value = registry.fingerprint(path)
    assert value is not None
    return value


def pack(model: Path, precision: str, data: bytes = TEXT) -> bytes:
    return compress(data, StepGraph.load(model, precision), block_size=100, version=1).blob


@pytest.fixture(scope="module")
def archives(root: Path) -> dict[str, bytes]:
    return {
        "alpha": pack(root / "alpha", "fp32"),
        "beta": pack(root / "beta", "fp32"),
        "gamma-int8": pack(root / "gamma", "int8"),
        "gamma-fp32": pack(root / "gamma", "fp32"),
    }


def test_lookup_picks_the_model_among_several(root: Path) -> None:
    assert [m.name for m in registry.shipped_models([root])] == ["alpha", "beta", "gamma"]
    for name in ("alpha", "beta", "gamma"):
        assert registry.locate(fp(root / name / STEP_FILE), "fp32", roots=[root]) == root / name
    int8 = fp(root / "gamma" / STEP_INT8_FILE)
    assert registry.locate(int8, "int8", roots=[root]) == root / "gamma"
    assert registry.locate(int8, "fp32", roots=[root]) is None  # the header's precision names the file
    assert registry.locate(fp(root / "beta" / STEP_FILE), "int8", roots=[root]) is None
    assert registry.locate(b"\x00" * 16, "fp32", roots=[root]) is None
    # the configured model is tried first, then the shipped ones
    first = registry.locate(fp(root / "beta" / STEP_FILE), "fp32", first=[root / "alpha"], roots=[root])
    assert first == root / "beta"
    assert registry.locate(int8, "int8", first=[root / "gamma"], roots=[]) == root / "gamma"


def test_hashes_only_the_headers_precision_and_once(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[Path] = []
    real = registry._digest

    def counting(path: Path) -> bytes | None:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(registry, "_digest", counting)
    monkeypatch.setattr(registry, "_hashes", {})
    int8 = fp(root / "gamma" / STEP_INT8_FILE)
    hashed.clear()
    assert registry.locate(int8, "int8", roots=[root]) == root / "gamma"
    assert registry.locate(int8, "int8", roots=[root]) == root / "gamma"
    assert hashed == []  # hashed above, cached since
    assert registry.locate(b"\x01" * 16, "fp32", roots=[root]) is None
    assert sorted(p.parent.name for p in hashed) == ["alpha", "beta", "gamma"]
    assert {p.name for p in hashed} == {STEP_FILE}
    hashed.clear()
    assert registry.locate(b"\x01" * 16, "fp32", roots=[root]) is None
    assert hashed == []


def test_decompress_without_model_finds_each_archives_model(
    shipped: Path, archives: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = []
    for name, blob in archives.items():
        (tmp_path / f"{name}.txt.lnrz").write_bytes(blob)
        names.append(str(tmp_path / f"{name}.txt.lnrz"))
    code, out, err = run(capsys, "decompress", *names)  # four archives, three models, two precisions
    assert code == 0 and out == "" and err.count("\n") == 4, err
    for name in archives:
        assert (tmp_path / f"{name}.txt").read_bytes() == TEXT
    code, out, err = run(capsys, "decompress", "-t", *names)
    assert code == 0 and err.count(" OK in ") == 4
    code, out, _ = run(capsys, "decompress", "-c", names[1])
    assert code == 0 and out == TEXT.decode()


def test_a_configured_model_that_did_not_make_it_is_passed_over(
    shipped: Path, archives: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LNRNN_MODEL_DIR", str(shipped / "alpha"))
    path = tmp_path / "beta.lnrz"
    path.write_bytes(archives["beta"])
    assert main(["decompress", "-q", "-o", str(tmp_path / "out"), str(path)]) == 0
    assert (tmp_path / "out").read_bytes() == TEXT


def test_library_decompress_without_a_graph(shipped: Path, archives: dict[str, bytes]) -> None:
    from lnrnn.codec import decompress

    assert decompress(archives["gamma-int8"]) == TEXT
    assert decompress(archives["alpha"]) == TEXT


def test_explicit_model_is_still_checked(
    shipped: Path, archives: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "beta.txt.lnrz"
    path.write_bytes(archives["beta"])
    err = one_line_exit_2(*run(capsys, "decompress", "-t", str(path), "--model", str(shipped / "alpha")))
    assert "compressed with another model" in err
    assert f"it matches {shipped / 'beta'}: decompress without --model" in err
    # the right --model works, and so does the model's other precision when the header names it
    assert run(capsys, "decompress", "-t", str(path), "--model", str(shipped / "beta"))[0] == 0
    path.write_bytes(archives["gamma-int8"])
    assert run(capsys, "decompress", "-t", str(path), "--model", str(shipped / "gamma"))[0] == 0
    # a --model without the header's precision: the archive's model is named, not "use fp32 or auto"
    err = one_line_exit_2(*run(capsys, "decompress", "-t", str(path), "--model", str(shipped / "beta")))
    assert f"{shipped / 'beta'} has no {STEP_INT8_FILE}" in err and f"it matches {shipped / 'gamma'}" in err


def test_unknown_fingerprint_is_one_line_naming_fingerprint_precision_and_producer(
    empty_root: Path, archives: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "beta.txt.lnrz"
    path.write_bytes(archives["beta"])
    header, _ = unpack(archives["beta"])
    err = one_line_exit_2(*run(capsys, "decompress", str(path)))
    assert "one this lnrnn does not know" in err
    assert header.fingerprint.hex() in err and "(fp32)" in err and f"written by {producer()}" in err
    assert str(empty_root) in err and "--model" in err
    assert not (tmp_path / "beta.txt").exists()


def test_known_fingerprint_names_the_model_and_how_to_get_it(
    root: Path,
    empty_root: Path,
    archives: dict[str, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The table written for a tree that had beta names it once beta is gone."""
    table = registry.updated_table(root, version="0.0.7")
    (empty_root / registry.TABLE_FILE).write_text(registry.render(table))
    path = tmp_path / "beta.txt.lnrz"
    path.write_bytes(archives["beta"])
    err = one_line_exit_2(*run(capsys, "decompress", str(path)))
    assert "compressed with models/beta of lnrnn 0.0.7 (fp32), which is not installed here" in err
    assert "pip install lnrnn==0.0.7" in err
    path.write_bytes(archives["gamma-int8"])
    err = one_line_exit_2(*run(capsys, "decompress", str(path)))
    assert "models/gamma of lnrnn 0.0.7 (int8)" in err


def test_the_table_keeps_old_entries(root: Path, tmp_path: Path) -> None:
    tree = tmp_path / "models"
    shutil.copytree(root / "beta", tree / "beta")
    first = registry.updated_table(tree, version="0.0.7")
    beta = fp(tree / "beta" / STEP_FILE).hex()
    assert first["fingerprints"][beta] == {
        "model": "beta",
        "precision": "fp32",
        "file": STEP_FILE,
        "lnrnn": "0.0.7",
        "get": "pip install lnrnn==0.0.7, or the models/beta directory of lnrnn 0.0.7",
    }
    (tree / registry.TABLE_FILE).write_text(registry.render(first))
    shutil.rmtree(tree / "beta")  # replaced by another model in a later version
    shutil.copytree(root / "alpha", tree / "beta")
    second = registry.updated_table(tree, version="0.0.8")
    assert second["fingerprints"][beta]["lnrnn"] == "0.0.7"  # still known: old archives name it
    assert second["fingerprints"][fp(tree / "beta" / STEP_FILE).hex()]["lnrnn"] == "0.0.8"
    (tree / registry.TABLE_FILE).write_text(registry.render(second))
    assert registry.updated_table(tree, version="0.0.9") == second  # nothing new: the versions stay


def test_the_committed_table_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    """Every step graph shipped now is in models/fingerprints.json under its own name and precision."""
    path = registry.package_root() / registry.TABLE_FILE
    committed = json.loads(path.read_text(encoding="utf-8"))
    assert committed == registry.updated_table(), "run: python -m lnrnn.codec.registry --write"
    assert path.read_text(encoding="utf-8") == registry.render(committed)
    shipped = registry.shipped_models([registry.package_root()])
    assert "default" in [m.name for m in shipped]
    for model in shipped:
        for precision, name in registry.STEP_FILES.items():
            value = registry.fingerprint(model.model_dir / name)
            if value is not None:
                entry = committed["fingerprints"][value.hex()]
                assert (entry["model"], entry["precision"], entry["file"]) == (model.name, precision, name)
    assert registry.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def with_producer(blob: bytes, producer: str, crc_delta: int = 0) -> bytes:
    header, payloads = unpack(blob)
    changed = dataclasses.replace(header, producer=producer, content_crc=header.content_crc ^ crc_delta)
    return container.pack(changed, payloads)


def test_checksum_mismatch_names_what_wrote_and_what_reads(
    shipped: Path, archives: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "beta.txt.lnrz"
    path.write_bytes(with_producer(archives["beta"], OLD, crc_delta=1))
    err = one_line_exit_2(*run(capsys, "decompress", "-t", str(path)))
    assert "do not match the checksum" in err
    assert f"written by {OLD}; read by {producer()}" in err
    assert "onnxruntime 1.0.0 -> " in err  # what differs, at a glance
    path.write_bytes(with_producer(archives["beta"], producer(), crc_delta=1))
    err = one_line_exit_2(*run(capsys, "decompress", "-t", str(path)))
    assert f"written and read by the same versions ({producer()}): the file is corrupted" in err


def test_a_corrupted_payload_from_other_versions_names_them(
    shipped: Path, archives: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Other versions' floats can make the range decoder refuse the words before the CRC is reached."""
    blob = with_producer(archives["beta"], OLD)
    header, _ = unpack(blob)
    path = tmp_path / "beta.txt.lnrz"
    for at in range(header.overhead, len(blob), 7):
        path.write_bytes(blob[:at] + bytes([blob[at] ^ 0x5A]) + blob[at + 1 :])
        err = one_line_exit_2(*run(capsys, "decompress", "-t", str(path)))
        assert f"written by {OLD}; read by {producer()}" in err, err


@pytest.mark.parametrize("version", [container.VERSION + 1, 255])
def test_a_future_format_version_is_one_line(
    version: int, archives: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = archives["beta"]
    path = tmp_path / "future.txt.lnrz"
    path.write_bytes(blob[:4] + bytes([version]) + blob[5:])
    err = one_line_exit_2(*run(capsys, "decompress", str(path)))
    assert f"format version {version} is not supported" in err
    assert re.search(rf"reads format versions up to {container.VERSION}\b", err), err
    assert "newer lnrnn" in err


@pytest.fixture
def client(shipped: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(shipped / "alpha"))) as c:
        yield c


def test_route_finds_the_model_by_fingerprint(
    client: TestClient, archives: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("alpha", "beta", "gamma-int8"):
        restored = client.post("/v1/decompress", content=archives[name], headers=OCTET)
        assert restored.status_code == 200 and restored.content == TEXT, name
    monkeypatch.setenv(registry.ENV, str(tmp_path))  # nothing shipped: only the served model, alpha
    assert client.post("/v1/decompress", content=archives["alpha"], headers=OCTET).content == TEXT
    msg = error(client.post("/v1/decompress", content=archives["beta"], headers=OCTET), 409, "model_mismatch")
    assert "one this lnrnn does not know" in msg and unpack(archives["beta"])[0].fingerprint.hex() in msg


def test_checkout_only_models_are_the_ones_the_wheel_leaves_out() -> None:
    """The table tells users where to get a model; for one the wheel does not carry, pip cannot be it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, what CI runs
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    excluded = config["tool"]["setuptools"]["exclude-package-data"]["lnrnn.models"]
    assert {pattern.split("/")[0] for pattern in excluded} == set(registry.CHECKOUT_ONLY)
    table = json.loads((REPO / "models" / registry.TABLE_FILE).read_text(encoding="utf-8"))
    for entry in table["fingerprints"].values():
        assert ("pip install" in entry["get"]) is (entry["model"] not in registry.CHECKOUT_ONLY), entry
