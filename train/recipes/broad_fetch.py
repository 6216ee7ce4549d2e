"""Fetch the packages of ``sources.py`` for ``broad_mix``: Debian packages extracted, npm packages installed.

python -m lnrnn.train.recipes.broad_fetch [--into runs/broad-src] [--allow-drift]

* Debian: ``apt-get download PACKAGE=VERSION`` (the pinned version), then ``dpkg-deb -R`` into
  ``deb/PACKAGE/``. Nothing is installed: no maintainer scripts run and the machine's own packages stay as
  they are. Needs a current package list (``apt-get update``; ``make default-data`` runs it).
* npm: ``npm install --prefix npm --no-save --ignore-scripts PACKAGE@VERSION ...`` (exact versions, no
  install scripts, no lock file written).

A package already there at its pinned version is not fetched again. A pinned Debian version that has left the
archive (a security or point-release update replaces it) fails with one line, exit 2; ``--allow-drift`` then
takes the archive's current version, which ``broad_mix --allow-drift`` accepts and records.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lnrnn.train.recipes.broad_mix import SRC
from lnrnn.train.recipes.packages import SourceError, open_package, package_root
from lnrnn.train.recipes.sources import packages


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


def _have(into: Path, registry: str, name: str, version: str) -> bool:
    try:
        return open_package(into, registry, name).version == version
    except SourceError:
        return False


def fetch_deb(into: Path, name: str, version: str, allow_drift: bool) -> str:
    """Download and extract one Debian package; returns the version extracted."""
    apt = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:  # as root, apt drops to _apt, which cannot write into the project's folders
        apt += ["-o", "APT::Sandbox::User=root"]
    with tempfile.TemporaryDirectory(dir=into) as tmp:
        proc = _run([*apt, f"{name}={version}"], cwd=Path(tmp))
        if proc.returncode != 0 and allow_drift:
            proc = _run([*apt, name], cwd=Path(tmp))
        if proc.returncode != 0:
            raise SourceError(
                f"apt-get download {name}={version} failed ({_last_line(proc)}): run apt-get update, or the "
                "pinned version has left the archive (update sources.py, or --allow-drift)"
            )
        (deb,) = Path(tmp).glob("*.deb")
        root = package_root(into, "deb", name)
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        proc = _run(["dpkg-deb", "-R", str(deb), str(root)])
        if proc.returncode != 0:
            raise SourceError(f"dpkg-deb -R {deb.name} failed: {_last_line(proc)}")
    return open_package(into, "deb", name).version


def fetch_npm(into: Path, wanted: list[tuple[str, str]]) -> None:
    """Install the npm packages at their exact versions (their dependencies come along, unused)."""
    npm = shutil.which("npm")
    if npm is None:
        raise SourceError("npm is not on PATH (Debian: apt-get install npm)")
    prefix = into / "npm"
    prefix.mkdir(parents=True, exist_ok=True)
    flags = ["--no-save", "--ignore-scripts", "--no-audit", "--no-fund", "--no-package-lock"]
    specs = [f"{name}@{version}" for name, version in wanted]
    proc = _run([npm, "install", "--prefix", str(prefix), *flags, *specs])
    if proc.returncode != 0:
        raise SourceError(f"npm install {' '.join(specs)} failed: {_last_line(proc)}")


def fetch(into: Path, allow_drift: bool = False) -> list[str]:
    """Fetch every package that is not already there at its pinned version; returns one line per package."""
    into.mkdir(parents=True, exist_ok=True)
    lines = []
    missing_npm = []
    for registry, name, version in packages():
        if _have(into, registry, name, version):
            lines.append(f"have    {registry} {name} {version}")
        elif registry == "deb":
            got = fetch_deb(into, name, version, allow_drift)
            lines.append(
                f"fetched {registry} {name} {got}" + ("" if got == version else f" (pinned {version})")
            )
        else:
            missing_npm.append((name, version))
    if missing_npm:
        fetch_npm(into, missing_npm)
        lines += [f"fetched npm {name} {version}" for name, version in missing_npm]
    return lines


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--into", type=Path, default=SRC, help="directory for the packages (broad_mix --src)")
    parser.add_argument(
        "--allow-drift", action="store_true", help="take the archive's version if the pin is gone"
    )
    args = parser.parse_args(argv)
    try:
        for line in fetch(args.into, args.allow_drift):
            print(line)
    except (OSError, ValueError) as err:
        print(f"broad_fetch: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
