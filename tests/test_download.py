"""The download helper, against a local HTTP server and file:// URLs: never the internet."""

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from course_utils import download as download_module
from course_utils import env
from course_utils.download import DownloadError, download

PAYLOAD = b"course data " * 5000  # 60 kB
SHA256 = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
MD5 = "md5:" + hashlib.md5(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802 - the name http.server expects
        Handler.hits.append(self.path)
        if self.path == "/file.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/truncated.bin":  # promises more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.send_error(404, "Not Found")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_data_dir_follows_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "elsewhere"))
    assert env.data_dir() == tmp_path / "elsewhere"
    assert env.data_dir().is_dir()


def test_data_dir_defaults_to_repo_data_folder(monkeypatch):
    monkeypatch.delenv("COURSE_DATA")
    assert env.data_dir() == Path(env.__file__).resolve().parent.parent / "data"


def test_download_verifies_and_renames(server, tmp_path):
    target = tmp_path / "sub" / "file.bin"
    assert download(f"{server}/file.bin", target, checksum=SHA256, size=len(PAYLOAD), quiet=True) == target
    assert target.read_bytes() == PAYLOAD
    assert leftovers(target.parent) == []


def test_md5_checksums_work_too(server, tmp_path):
    target = download(f"{server}/file.bin", tmp_path / "file.bin", checksum=MD5, quiet=True)
    assert target.read_bytes() == PAYLOAD


def test_verified_copy_is_not_downloaded_again(server, tmp_path, capsys):
    target = tmp_path / "file.bin"
    download(f"{server}/file.bin", target, checksum=SHA256, quiet=True)
    hits = len(Handler.hits)
    download(f"{server}/file.bin", target, checksum=SHA256)
    assert len(Handler.hits) == hits
    assert "already" in capsys.readouterr().out


def test_damaged_copy_is_replaced(server, tmp_path, capsys):
    target = tmp_path / "file.bin"
    target.write_bytes(b"half a file")
    download(f"{server}/file.bin", target, checksum=SHA256)
    assert target.read_bytes() == PAYLOAD
    assert "cannot be used" in capsys.readouterr().out


def test_http_error_names_url_path_and_fix(server, tmp_path):
    target = tmp_path / "missing.bin"
    with pytest.raises(DownloadError) as info:
        download(f"{server}/missing.bin", target, quiet=True)
    message = str(info.value)
    assert f"{server}/missing.bin" in message and str(target) in message
    assert "HTTP 404" in message and "put it" in message and "COURSE_QUICK=1" in message
    assert not target.exists() and leftovers(tmp_path) == []


def test_bad_checksum_keeps_nothing(server, tmp_path):
    target = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="checksum"):
        download(f"{server}/file.bin", target, checksum="sha256:" + "0" * 64, quiet=True)
    assert not target.exists() and leftovers(tmp_path) == []


def test_wrong_size_keeps_nothing(server, tmp_path):
    target = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="expected 12"):
        download(f"{server}/file.bin", target, size=12, quiet=True)
    assert not target.exists() and leftovers(tmp_path) == []


def test_bad_checksum_does_not_destroy_an_existing_file(server, tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"an older copy")
    with pytest.raises(DownloadError):
        download(f"{server}/file.bin", target, checksum="sha256:" + "0" * 64, quiet=True)
    assert target.read_bytes() == b"an older copy" and leftovers(tmp_path) == []


def test_connection_cut_short(server, tmp_path):
    target = tmp_path / "truncated.bin"
    with pytest.raises(DownloadError) as info:
        download(f"{server}/truncated.bin", target, quiet=True)
    assert "truncated.bin" in str(info.value)
    assert not target.exists() and leftovers(tmp_path) == []


def test_offline_gives_one_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: like being offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="could not be reached") as info:
        download(f"http://127.0.0.1:{port}/file.bin", target, quiet=True, timeout=5)
    assert "offline" in str(info.value)
    assert info.value.__cause__ is None  # no chained urllib traceback
    assert not target.exists() and leftovers(tmp_path) == []


def test_file_urls(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    target = download(source.as_uri(), tmp_path / "copy.bin", checksum=SHA256, quiet=True)
    assert target.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError):
        download((tmp_path / "nope.bin").as_uri(), tmp_path / "nope-copy.bin", quiet=True)
    assert leftovers(tmp_path) == []


def test_interrupted_download_leaves_no_part_file(server, tmp_path, monkeypatch):
    def interrupt(self, block):
        raise KeyboardInterrupt

    monkeypatch.setattr(download_module.tqdm, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download(f"{server}/file.bin", tmp_path / "file.bin", quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_malformed_checksum_is_rejected_before_downloading(tmp_path):
    with pytest.raises(ValueError, match="sha256:"):
        download("http://127.0.0.1:9/x", tmp_path / "x", checksum="abc123")


def test_verify_reports_why():
    assert download_module.verify(Path("/nonexistent/file")) == "the file does not exist"
