"""Downloads against a local Range-capable server: an interrupted transfer continues from its `.part` file, and
archives that would write outside their folder are refused in one line. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from gantrain.data.download import download_and_extract, fetch_archive
from gantrain.errors import GantrainError


class RangeServer:
    """Serves one payload; honours `Range: bytes=N-` with 206, and can drop the first transfer half way."""

    def __init__(self, payload: bytes, drop_first_at: int | None = None) -> None:
        self.payload, self.drop_at, self.requests = payload, drop_first_at, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
                body = server.payload[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.end_headers()
                if server.drop_at is not None:  # the connection dies mid-transfer
                    self.wfile.write(body[: server.drop_at])
                    server.drop_at = None
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                """Keep the per-request access log out of the test output."""

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: list[tarfile.TarInfo], data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for m in members:
            tf.addfile(m, io.BytesIO(data) if m.isfile() else None)
    return buf.getvalue()


def test_interrupted_download_continues_from_the_part_file(tmp_path):
    payload = zip_bytes({"toy/trainA/0.txt": bytes(range(256)) * 200})
    half = len(payload) // 2
    server = RangeServer(payload, drop_first_at=half)
    try:
        with pytest.raises(GantrainError, match="interrupted|ended early") as info:
            download_and_extract(f"{server.url}/toy.zip", tmp_path, expect=("trainA",), progress=False)
        assert "\n" not in str(info.value)
        part = tmp_path / "toy.zip.part"
        assert part.stat().st_size == half and not (tmp_path / "toy").exists()
        out = download_and_extract(f"{server.url}/toy.zip", tmp_path, expect=("trainA",), progress=False)
    finally:
        server.close()
    assert server.requests == [None, f"bytes={half}-"], "the second request asks only for the missing bytes"
    assert (out / "trainA" / "0.txt").read_bytes() == bytes(range(256)) * 200
    assert not part.exists()


def test_captioned_downloader_also_continues(tmp_path):
    payload = tar_bytes([_file("jpg/a.txt", 5000)], b"y" * 5000)
    server = RangeServer(payload, drop_first_at=3000)
    try:
        with pytest.raises(GantrainError):
            fetch_archive(f"{server.url}/data.tar", tmp_path)
        fetch_archive(f"{server.url}/data.tar", tmp_path)
    finally:
        server.close()
    assert server.requests == [None, "bytes=3000-"]
    assert (tmp_path / "jpg" / "a.txt").read_bytes() == b"y" * 5000


def _file(name: str, size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("archive,name", [
    (tar_bytes([_file("../escape.txt")]), "evil.tar"),
    (tar_bytes([_link("inner", "/etc/passwd", tarfile.SYMTYPE)]), "evil.tar"),
    (tar_bytes([_link("inner", "../../outside", tarfile.LNKTYPE)]), "evil.tar"),
    (zip_bytes({"../escape.txt": b"x"}), "evil.zip"),
])
def test_archives_escaping_their_folder_are_refused(archive, name, tmp_path):
    for fetch in (lambda url: download_and_extract(url, tmp_path / "a", progress=False),
                  lambda url: fetch_archive(url, tmp_path / "b")):
        server = RangeServer(archive)
        try:
            with pytest.raises(GantrainError, match="unsafe path|link") as info:
                fetch(f"{server.url}/{name}")
        finally:
            server.close()
        assert "\n" not in str(info.value)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "outside").exists()
    assert not list(Path(tmp_path).rglob("inner"))
