"""Atomic file writes, the one way the store's files are (re)written.

Two runs may touch the store at once (a scheduled crawl while full_pipeline runs), so a file is
written to a temporary sibling and renamed onto its name (`os.replace`, one atomic step within
a directory on POSIX filesystems, NFS included): a reader sees the old file or the new one,
never a torn one, and a reader that opened the old file keeps reading it whole. A failed write
removes its temporary and leaves the old file. Temporary names are `.<name>.<pid>.<random>.tmp`:
unique per writer (two processes or threads never share one) and matched by no `*.jpg` or
`*.meta.json` glob. There is no fsync: this guards against concurrent readers and failing
writers, not against a power cut.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_sibling(path: Path) -> Path:
    """A hidden temporary name beside `path`, unique to this call."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` to write; renamed onto `path` when the block ends, removed
    (and `path` untouched) when it raises. Writers that infer the format from the suffix (PIL)
    must be given the format: the temporary name ends in `.tmp`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: Path | str, data: bytes) -> Path:
    """`path.write_bytes(data)`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomically(path: Path | str, text: str, encoding: str = "utf-8") -> Path:
    """`path.write_text(text)`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_atomically(writers: dict[Path, Callable[[Path], object]]) -> None:
    """Write each file through its writer to a temporary sibling, and rename them all into
    place only once every one was written: a failure midway (a row Parquet cannot encode, a
    full disk) leaves the previous set of files whole and removes the temporaries. Each file is
    replaced atomically; the renames follow one another at once, so a reader between them can
    pair a new file with an old one of the same set."""
    tmps: dict[Path, Path] = {}
    try:
        for path, write in writers.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmps[path] = temp_sibling(path)
            write(tmps[path])
    except BaseException:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        raise
    for path, tmp in tmps.items():
        os.replace(tmp, path)
