"""What the serve stage's commands share for input and output: files or `-`, atomic writes, a progress bar."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from lnrnn.errors import UserError

PROGRESS_MIN_BYTES = 256 * 1024  # show a progress bar (stderr, TTY only) from this size on


def echo(line: str = "", *, err: bool = False, end: str = "\n") -> None:
    """The only output path of the serve CLI (the rest of serve/ logs instead of printing)."""
    print(line, end=end, file=sys.stderr if err else sys.stdout)


def read_input(name: str) -> bytes:
    """A file's bytes, or standard input's for ``-``; a one-line error if it cannot be read."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {name}: {err.strerror}") from None


def _mode_for(source: str) -> int:
    """The new file's permission bits: the input file's, as gzip keeps them, else what ``open`` would give
    (0666 less the umask; the temporary file alone would be 0600)."""
    if source != "-":
        try:
            return stat.S_IMODE(os.stat(source).st_mode)
        except OSError:
            pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_output(name: str, data: bytes, *, source: str = "-") -> None:
    """Standard output for ``-``, else a temporary file in the target's folder renamed over it once
    complete: a failed command never leaves a partial file. The file gets ``source``'s permission bits."""
    if name == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent or ".")
    except OSError as err:
        raise UserError(f"cannot write {name}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fchmod(out.fileno(), _mode_for(source))
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {name}: {err.strerror}") from None


class ProgressBar:
    """A one-line progress bar on stderr, called with the number of units just done."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(1, total), 0

    def __call__(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        filled = 30 * self.done // self.total
        bar = "#" * filled + "." * (30 - filled)
        pct = 100 * self.done // self.total
        echo(f"\r{self.label} [{bar}] {pct:3d}% of {self.total} bytes", end="", err=True)
        if self.done == self.total:
            echo(err=True)


def progress_bar(label: str, total: int) -> ProgressBar | None:
    """A bar for long inputs on a terminal; None otherwise (pipes and logs stay clean)."""
    return ProgressBar(label, total) if total >= PROGRESS_MIN_BYTES and sys.stderr.isatty() else None
