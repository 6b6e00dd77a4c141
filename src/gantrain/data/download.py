"""Fetch and unpack a dataset archive so that an interrupted run never leaves a folder that looks complete.

The archive is streamed to `<name>.part` (resumed with an HTTP Range request when the server allows it),
renamed when complete, optionally checked against a sha256, extracted into a temporary folder next to the
destination, checked for the expected layout, and only then renamed into place (an atomic rename).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from gantrain.errors import GantrainError

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def _archive_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return name or "download"


def _strip_suffix(name: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_to_part(url: str, part: Path, timeout: float, progress: bool, manual: str) -> None:
    """Stream `url` into `part`, continuing a previous partial download when the server honours Range."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "gantrain"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already complete
            return
        raise GantrainError(f"download of {url} failed (HTTP {exc.code} {exc.reason}); {manual}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GantrainError(f"cannot download {url} ({reason}): offline or unreachable; {manual}") from None
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = (int(length) + have) if length is not None else None
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name[: -len(".part")], disable=not progress, leave=False)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # a dropped connection: IncompleteRead
            raise GantrainError(f"download of {url} was interrupted ({exc}); run again to continue, or {manual}") from None
        finally:
            bar.close()
    if total is not None and part.stat().st_size != total:
        raise GantrainError(f"download of {url} ended early ({part.stat().st_size} of {total} bytes); run again to continue")


def _safe_members_dir(dest: Path, name: str) -> Path:
    target = (dest / name).resolve()
    if not str(target).startswith(str(dest.resolve()) + os.sep) and target != dest.resolve():
        raise GantrainError(f"the archive holds an unsafe path {name!r}; refusing to extract it")
    return target


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) into `dest`, refusing paths that escape it; a damaged archive is an error."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise GantrainError(f"{archive} is damaged (bad CRC in {bad}); delete it and download again")
                for member in zf.namelist():
                    _safe_members_dir(dest, member)
                zf.extractall(dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _safe_members_dir(dest, member.name)
                    if member.issym() or member.islnk():
                        raise GantrainError(f"{archive} holds a link ({member.name}); refusing to extract it")
                tf.extractall(dest)
        else:
            raise GantrainError(f"{archive} is neither a zip nor a tar archive; delete it and download again")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise GantrainError(f"{archive} is damaged ({exc}); delete it and download again") from None


def fetch_file(url: str, dest_dir: Path, *, timeout: float, progress: bool, manual: str) -> Path:
    """`dest_dir/<archive name>`, downloaded through a resumable `.part` file unless it is already there."""
    archive = dest_dir / _archive_name(url)
    if not archive.exists():
        part = dest_dir / (archive.name + ".part")
        log.info("downloading %s to %s", url, archive)
        fetch_to_part(url, part, timeout, progress, manual)
        os.replace(part, archive)
    return archive


def fetch_archive(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Download `url` into `dest` (kept there) and unpack it in place if it is a tar or zip archive; returns
    the file. For releases unpacked side by side into one root (the captioned sets' images and captions)."""
    dest.mkdir(parents=True, exist_ok=True)
    target = fetch_file(url, dest, timeout=timeout, progress=False, manual=f"download it by hand into {dest}")
    if tarfile.is_tarfile(target) or zipfile.is_zipfile(target):
        extract_archive(target, dest)
    return target


def _check_layout(folder: Path, expect: Sequence[str], where: str) -> None:
    missing = [e for e in expect if not (folder / e).exists()]
    if missing:
        raise GantrainError(f"{where} lacks {', '.join(missing)}; expected {', '.join(expect)} inside it")


def download_and_extract(
    url: str,
    dest_dir: str | Path,
    *,
    folder_name: str | None = None,
    sha256: str | None = None,
    expect: Sequence[str] = (),
    timeout: float = 60.0,
    progress: bool = True,
    keep_archive: bool = False,
) -> Path:
    """Make `dest_dir/folder_name` hold the unpacked archive at `url`, and return that folder.

    An existing folder with the `expect`ed entries is returned at once (no network). The archive may hold
    the folder itself (`horse2zebra/trainA/...`) or its contents directly; either way the result is the same.
    Offline or failed downloads raise one `GantrainError` naming the URL and where to put the files by hand.
    """
    dest_dir = Path(dest_dir).expanduser()
    archive_name = _archive_name(url)
    folder_name = folder_name or _strip_suffix(archive_name)
    target = dest_dir / folder_name
    layout = f" (with {', '.join(expect)} inside)" if expect else ""
    manual = f"download it by hand and unpack it so that {target}{os.sep} exists{layout}"
    if target.is_dir():
        _check_layout(target, expect, str(target))
        return target
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GantrainError(f"cannot create {dest_dir} ({exc}); set data.root to a writable folder") from None
    archive = fetch_file(url, dest_dir, timeout=timeout, progress=progress, manual=manual)
    if sha256 is not None:
        digest = sha256_of(archive)
        if digest.lower() != sha256.lower():
            archive.unlink()
            raise GantrainError(f"{archive_name} from {url} has sha256 {digest}, expected {sha256}; it was deleted, run again")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder_name}.", suffix=".tmp", dir=dest_dir))
    try:
        extract_archive(archive, tmp)
        entries = [p for p in tmp.iterdir() if not p.name.startswith("__MACOSX")]
        inner = entries[0] if len(entries) == 1 and entries[0].is_dir() and not (expect and (tmp / expect[0]).exists()) else tmp
        _check_layout(inner, expect, f"the archive {archive_name}")
        if inner is tmp:
            os.replace(tmp, target)
        else:
            os.replace(inner, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    log.info("%s is ready at %s", folder_name, target)
    return target
