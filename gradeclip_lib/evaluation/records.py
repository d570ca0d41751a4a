"""The results file: one JSON line per image x method x target, appended as soon as it is finished, so
that a re-run (also after a kill) resumes where the last one stopped and never writes a record twice.

Under ``torchrun`` each rank appends to ``FILE.rank<r>.jsonl``; `merge` folds them into ``FILE`` at the
end (and at the start of the next run, if a run was killed before merging).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

Key = tuple[str, str, str]  # (image, method, target)


def record_key(record: dict) -> Key:
    return record["image"], record["method"], record["target"]


def rank_file(out: str | os.PathLike, rank: int) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.rank{rank}{out.suffix or '.jsonl'}")


def rank_files(out: str | os.PathLike) -> list[Path]:
    out = Path(out)
    return sorted(out.parent.glob(f"{out.stem}.rank*{out.suffix or '.jsonl'}"))


def _repair(path: Path) -> None:
    """Cut a last line that a kill left half-written (everything before it is complete)."""
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def read_records(path: str | os.PathLike) -> Iterator[dict]:
    """The complete records of a results file (a half-written last line is dropped)."""
    path = Path(path)
    if not path.is_file():
        return
    _repair(path)
    with open(path) as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def finished(out: str | os.PathLike) -> set[Key]:
    """Keys of every record already written, in the results file and in any rank files beside it."""
    done = {record_key(r) for r in read_records(out)}
    for extra in rank_files(out):
        done.update(record_key(r) for r in read_records(extra))
    return done


class RecordWriter:
    """Appends records to a JSON-lines file, flushed after every batch (a kill loses at most that batch)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            _repair(self.path)
        self._fh = open(self.path, "a")

    def write(self, records: Iterable[dict]) -> None:
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        self._fh.write(text)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge(out: str | os.PathLike) -> int:
    """Fold the rank files into ``out`` (first copy of a key wins), atomically; returns the record count."""
    out = Path(out)
    extras = rank_files(out)
    if not extras:
        return sum(1 for _ in read_records(out))
    seen: set[Key] = set()
    tmp = out.with_name(out.name + ".merging")
    count = 0
    with open(tmp, "w") as fh:
        for source in [out, *extras]:
            for record in read_records(source):
                key = record_key(record)
                if key not in seen:
                    seen.add(key)
                    fh.write(json.dumps(record, separators=(",", ":")) + "\n")
                    count += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    for extra in extras:
        extra.unlink()
    return count
