"""Bad input and faults in the data layer and in mnistfw-predict's inputs: one clear line, no fallback
that hides a local fault, nothing half-written, every unusable predict input named and skipped."""

from __future__ import annotations

import gzip
import http.server
import json
import logging
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA, run_cli
from PIL import Image

from mnistfw.data import idx
from mnistfw.data.data_settings import DataConfig, SplitConfig
from mnistfw.data.download import DATASETS, FILES, locate_files
from mnistfw.data.loading import load_dataset
from mnistfw.data.sample import load_sample
from mnistfw.errors import DataError
from mnistfw.predict_inputs import gather_inputs

MNIST = SHARED_DATA / "mnist"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason=f"full MNIST not at {MNIST}")


def _closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused (like no network)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# --------------------------------------------------------------------------- data.dir that is not a folder


@pytest.mark.parametrize("source", ["auto", "full"])
def test_data_dir_that_is_a_file_is_refused_without_fallback(
    tmp_path: Path, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    a_file = tmp_path / "mnist.tar"
    a_file.write_bytes(b"not a folder")
    cfg = DataConfig(name="mnist", source=source, dir=str(a_file), mirrors=[_closed_port_url()])
    with caplog.at_level(logging.WARNING), pytest.raises(DataError) as err:
        load_dataset(cfg, seed=0)
    assert _one_line(err) == (
        f"data.dir: {a_file} is a file, not a folder; point data.dir (or MNISTFW_DATA_DIR) at the folder "
        f"holding the four IDX files"
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no fallback, no network blamed
    assert a_file.read_bytes() == b"not a folder"


def test_data_dir_inside_a_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("x")
    monkeypatch.setenv("MNISTFW_DATA_DIR", str(a_file))  # data.dir null: $MNISTFW_DATA_DIR/mnist
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="mnist", source="auto", mirrors=[_closed_port_url()]), seed=0)
    assert _one_line(err).startswith(f"data.dir: {a_file / 'mnist'} cannot be a folder: {a_file} is a file; point")


def test_a_folder_in_place_of_an_idx_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / FILES["train_images"]).mkdir()
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="mnist", source="auto", dir=str(tmp_path), mirrors=[_closed_port_url()]), seed=0)
    assert _one_line(err).startswith(f"{tmp_path / FILES['train_images']} is a folder; remove it")


def test_train_cli_refuses_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "mnist"
    a_file.write_text("x")
    result = run_cli("mnistfw-train", f"data.dir={a_file}", "hydra.run.dir=run", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: data.dir: {a_file} is a file, not a folder; point data.dir (or MNISTFW_DATA_DIR) at "
                     f"the folder holding the four IDX files"], result.stderr[-2000:]  # fmt: skip
    assert "Traceback" not in result.stderr and "bundled" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- permissions (rights not bypassed)

_LOAD = """
import sys
from mnistfw.data.data_settings import DataConfig, SplitConfig
from mnistfw.data.loading import load_dataset
from mnistfw.errors import MnistfwError
name, source, folder, mirror = sys.argv[1:5]
try:
    load_dataset(DataConfig(name=name, source=source, dir=folder, mirrors=[mirror], split=SplitConfig(val=2)), seed=0)
except MnistfwError as exc:
    print("error:", exc)
    sys.exit(2)
print("loaded")
"""

#: Run as root, the child first gives up the capabilities that bypass file permissions
#: (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), so permission bits apply to it as to anyone.
_UNPRIVILEGED = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for cap in (1, 2, 3):
    if libc.prctl(24, cap, 0, 0, 0):  # PR_CAPBSET_DROP
        sys.exit(f"cannot drop capability {cap}: {os.strerror(ctypes.get_errno())}")
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def _load_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """Run load_dataset in a process that file permissions apply to (also when the tests run as root)."""
    command = [sys.executable, "-c", _LOAD, *args]
    if os.geteuid() == 0:
        command[1:1] = ["-c", _UNPRIVILEGED]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    if "cannot drop capability" in result.stderr:
        pytest.skip(result.stderr.strip())
    return result


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[None]:
    yield
    for path in tmp_path.rglob("*"):
        path.chmod(0o755)


def test_unreadable_or_unwritable_data_folder_is_an_error_not_a_fallback(tmp_path: Path, restore_modes: None) -> None:
    closed = _closed_port_url()
    unreadable, readonly, readonly_parent = tmp_path / "unreadable", tmp_path / "readonly", tmp_path / "ro_parent"
    for folder in (unreadable, readonly, readonly_parent):
        folder.mkdir()
    unreadable.chmod(0o000)
    readonly.chmod(0o555)
    readonly_parent.chmod(0o555)
    cases = [
        (unreadable, f"data.dir: {unreadable} is not readable (permission denied)"),
        (readonly, f"missing in {readonly} and cannot be downloaded there: {readonly} is not writable"),
        (readonly_parent / "mnist", f"cannot be downloaded there: {readonly_parent} is not writable"),
    ]
    for folder, message in cases:
        result = _load_unprivileged("mnist", "auto", str(folder), closed)
        assert result.returncode == 2, (folder, result.stdout, result.stderr[-2000:])
        assert result.stdout.count("error:") == 1 and message in result.stdout, (message, result.stdout)
        assert "bundled" not in result.stdout + result.stderr  # a local fault never falls back
    # Only "missing and not downloadable" falls back, in a folder that could take the files.
    result = _load_unprivileged("mnist", "auto", str(tmp_path / "writable"), closed)
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr[-2000:]
    assert "connection refused" in result.stderr and "bundled 5,000-image MNIST sample" in result.stderr


def test_unreadable_idx_file_is_one_line_naming_it(tmp_path: Path, restore_modes: None) -> None:
    folder = tmp_path / "tiny"
    for role, fname in FILES.items():
        path = folder / fname.removesuffix(".gz")
        if role.endswith("images"):
            idx.write_images(path, np.zeros((4, 3, 3), dtype=np.uint8))
        else:
            idx.write_labels(path, np.arange(4))
    secret = folder / FILES["test_images"].removesuffix(".gz")
    secret.chmod(0o000)
    result = _load_unprivileged("tiny", "full", str(folder), _closed_port_url())
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout.strip() == f"error: {secret}: cannot be read (Permission denied)", result.stdout


# --------------------------------------------------------------------------- downloads: permissions, kills, locks


@pytest.fixture(scope="module")
def mnist_server() -> Iterator[dict]:
    """A real HTTP server on 127.0.0.1 serving the real MNIST files from memory (their checksums pass).

    Paths in ``state["stall"]`` are sent half-way, then held until ``state["release"]`` is set.
    """
    if not MNIST.is_dir():
        pytest.skip(f"full MNIST not at {MNIST}")
    files = {f"/{name}": (MNIST / name).read_bytes() for name in FILES.values()}
    state: dict = {"hits": [], "stall": set(), "release": threading.Event()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            state["hits"].append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                if self.path in state["stall"]:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    state["release"].wait(30)
                    body = body[len(body) // 2 :]
                self.wfile.write(body)
            except OSError:  # the client was killed
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state["base"] = f"http://127.0.0.1:{server.server_address[1]}/"
    yield state
    state["release"].set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(mnist_server: dict) -> dict:
    mnist_server["hits"].clear()
    mnist_server["stall"].clear()
    mnist_server["release"].clear()
    return mnist_server


@needs_mnist
def test_downloaded_files_get_the_usual_permissions(tmp_path: Path, server: dict) -> None:
    old = os.umask(0o022)
    try:
        data = load_dataset(
            DataConfig(name="mnist", source="full", dir=str(tmp_path / "mnist"), mirrors=[server["base"]]), seed=0
        )
    finally:
        os.umask(old)
    assert data.info.sizes["test"] == 10000 and sum("downloaded" in n for n in data.info.notes) == 4
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(FILES.values())
    for name in FILES.values():
        assert stat.S_IMODE((tmp_path / "mnist" / name).stat().st_mode) == 0o644, name


def test_idx_files_written_by_the_data_layer_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        idx.write_images(tmp_path / "i-idx3-ubyte.gz", np.zeros((2, 3, 3), dtype=np.uint8))
        idx.write_labels(tmp_path / "l-idx1-ubyte", np.arange(2))
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in sorted(tmp_path.iterdir())] == [0o640, 0o640]


_DOWNLOAD = """
import sys
from pathlib import Path
from mnistfw.data.download import DATASETS, locate_files
locate_files(Path(sys.argv[1]), DATASETS["mnist"], mirrors=[sys.argv[2]])
print("done")
"""


def _start_download(folder: Path, base: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", _DOWNLOAD, str(folder), base], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip


def _wait_for_partial(folder: Path, proc: subprocess.Popen[str], name: str) -> Path:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = [p for p in folder.glob(f".{name}-*.part") if p.stat().st_size > 0] if folder.is_dir() else []
        if parts:
            return parts[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no partial download of {name} appeared in {folder}")


@needs_mnist
def test_a_killed_download_is_cleaned_up_by_the_next_run(tmp_path: Path, server: dict) -> None:
    folder = tmp_path / "mnist"
    name = FILES["test_labels"]
    server["stall"].add(f"/{name}")
    proc = _start_download(folder, server["base"])
    partial = _wait_for_partial(folder, proc, name)
    proc.send_signal(signal.SIGKILL)  # killed half-way: no handler runs, the partial file stays
    proc.wait(10)
    server["release"].set()
    assert partial.exists()
    # A partial download left by a version that downloaded through pooch.retrieve, untouched for an hour,
    # a fresh one (perhaps a live download of such a version) and files that are not ours.
    old_pooch, fresh_pooch = folder / "tmpab12_x9z", folder / "tmpcd34_y8w"
    for path in (old_pooch, fresh_pooch):
        path.write_bytes(b"\x1f\x8b\x08" + bytes(100))
    os.utime(old_pooch, (time.time() - 3600, time.time() - 3600))
    keep = [fresh_pooch, folder / ".notes-12345678.part", folder / "tmp_notes.txt", folder / "README"]
    for path in keep[1:]:
        path.write_text("mine")
    server["stall"].clear()
    files, notes = locate_files(folder, DATASETS["mnist"], mirrors=[server["base"]])
    assert sorted(p.name for p in files.values()) == sorted(FILES.values())
    assert not partial.exists() and not old_pooch.exists()
    assert all(p.exists() for p in keep)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES.values(), *(p.name for p in keep)])
    assert notes == [f"downloaded {name} from {server['base']}{name}"]  # the three finished files were kept


@needs_mnist
def test_a_live_download_is_waited_for_not_deleted_or_repeated(tmp_path: Path, server: dict) -> None:
    folder = tmp_path / "mnist"
    name = FILES["test_labels"]
    server["stall"].add(f"/{name}")
    proc = _start_download(folder, server["base"])
    partial = _wait_for_partial(folder, proc, name)
    result: dict = {}

    def second_run() -> None:
        result["files"], result["notes"] = locate_files(folder, DATASETS["mnist"], mirrors=[server["base"]])

    thread = threading.Thread(target=second_run, daemon=True)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive() and partial.exists()  # waits for the folder lock; the live download is untouched
    server["release"].set()
    assert proc.wait(30) == 0, proc.communicate()
    thread.join(30)
    assert not thread.is_alive() and len(result["files"]) == 4 and result["notes"] == []
    assert server["hits"].count(f"/{name}") == 1  # the second run used the first run's download
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES.values())


# --------------------------------------------------------------------------- CSV files


def _csv(path: Path, rows: int = 20, width: int = 16) -> None:
    header = ",".join(["label"] + [f"pixel{i}" for i in range(width)])
    lines = [",".join(map(str, [r % 10] + [(r * 7 + c) % 256 for c in range(width)])) for r in range(rows)]
    path.write_text("\n".join([header, *lines]) + "\n")


def _edit(path: Path, line: int, column: int, value: str) -> None:
    lines = path.read_text().split("\n")
    cells = lines[line - 1].split(",")
    cells[column] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines))


def _load_csv(path: Path, **kw: object) -> object:
    kw = {"image_shape": [4, 4], "split": SplitConfig(val=0.1), **kw}
    return load_dataset(DataConfig(source="csv", name="csv", path=str(path), **kw), seed=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ((18, 0, "10"), "label 10 in column 'label', line 18: labels must be class numbers 0-9"),
        ((5, 0, "-1"), "label -1 in column 'label', line 5: labels must be class numbers 0-9"),
        ((6, 0, "2.5"), "label 2.5 in column 'label', line 6: labels must be class numbers 0-9"),
        ((7, 0, "NaN"), "non-numeric value 'NaN' in column 'label', line 7"),
        ((8, 0, ""), "an empty cell in column 'label', line 8"),
        ((9, 3, "abc"), "non-numeric value 'abc' in column 'pixel2', line 9"),
        ((10, 4, "256"), "pixel value 256 in column 'pixel3', line 10: pixels must be integers 0-255"),
        ((11, 5, "-3"), "pixel value -3 in column 'pixel4', line 11: pixels must be integers 0-255"),
        ((12, 16, "1,2"), "Expected 17 fields in line 12, saw 18"),
        ((13, 12, "1\n"), "line 13 has 13 values but the header names 17 columns"),
    ],
)
def test_csv_faults_name_file_line_and_column(tmp_path: Path, edit: tuple[int, int, str], message: str) -> None:
    path = tmp_path / "train.csv"
    _csv(path)
    line, column, value = edit
    if value.endswith("\n"):  # a short row: cut it after `column` cells
        lines = path.read_text().split("\n")
        lines[line - 1] = ",".join(lines[line - 1].split(",")[:column + 1])
        path.write_text("\n".join(lines))
    else:
        _edit(path, line, column, value)
    with pytest.raises(DataError) as err:
        _load_csv(path)
    text = _one_line(err)
    assert text.startswith(f"{path.resolve()}: ") and message in text, text


def test_csv_empty_unlabelled_or_a_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty; a CSV needs a header row") as err:
        _load_csv(empty)
    _one_line(err)
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("pixel0,pixel1,pixel2,pixel3\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"unlabelled\.csv: no label column 'label'") as err:
        _load_csv(unlabelled, image_shape=[2, 2])
    _one_line(err)
    folder = tmp_path / "train.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"^data\.path: .*train\.csv is a folder, not a CSV file") as err:
        _load_csv(folder)


def test_csv_class_count_is_explicit(tmp_path: Path) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    _csv(train)
    _csv(test, rows=10)
    _edit(test, 4, 0, "10")
    with pytest.raises(DataError, match=r"test\.csv: label 10 in column 'label', line 4: .*0-9"):
        _load_csv(train, test_path=str(test))
    data = _load_csv(train, test_path=str(test), n_classes=11)  # the config says there are eleven classes
    assert data.info.n_classes == 11 and data.info.class_names[-1] == "10"  # type: ignore[attr-defined]
    _edit(test, 4, 0, "3")
    data = _load_csv(train, test_path=str(test))
    assert data.info.n_classes == 10 and data.info.class_names == [str(d) for d in range(10)]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- mnistfw-predict inputs


def _bomb_png(path: Path, side: int = 30000) -> None:
    """A valid 1-bit PNG of side x side pixels (900 megapixels), ~110 KB: zlib-compressed all-zero rows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(6)
    idat = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_sample()[0][:8].reshape(-1, 28, 28).astype(np.uint8)


def _photo(digit: np.ndarray) -> Image.Image:
    big = np.asarray(Image.fromarray(digit).resize((96, 96), Image.Resampling.BILINEAR), dtype=np.float32)
    paper = np.full((120, 110), 215.0, dtype=np.float32)
    paper[10:106, 8:104] -= big * 0.75
    return Image.fromarray(paper.astype(np.uint8))


#: Every kind of unusable input -> a part of the reason it is skipped with.
BAD = {
    "bomb.png": "picture too large",
    "truncated.png": "not a readable image",
    "truncated.jpg": "not a readable image",
    "zero.png": "not a readable image",
    "notes.txt": "not a readable image",
    "pipe.png": "not a regular file",
    "broken-link.png": "a link to a file that does not exist",
    "wrong-shape.npy": "array of shape (4, 27, 27) cannot be read as images",
    "strings.npy": "dtype <U3 is not numeric pixel data",
    "objects.npy": "holds Python objects",
    "truncated.npy": ".npy file is truncated",
    "zero.npy": "not a .npy file",
    "archive.npy": "holds several arrays (.npz)",
    "small-idx3-ubyte": "IDX images are 27x27, the model expects 28x28",
    "short-idx3-ubyte.gz": "truncated",
    "huge-header-idx3-ubyte": "truncated: the header says 1000000000 x 28 x 28",
    "labels-idx1-ubyte": "an IDX labels file, 1 dimension(s)",
    "zero-idx3-ubyte": "not an IDX file",
}


@pytest.fixture
def inputs(tmp_path: Path, digits: np.ndarray) -> Path:
    """A folder with three good inputs (1 picture + 3 array rows + 2 IDX images), one in a folder named
    like a picture, and every kind of unusable input."""
    folder = tmp_path / "inputs"
    (folder / "dir.png").mkdir(parents=True)
    (folder / "empty.png").mkdir()
    _photo(digits[0]).save(folder / "good.png")
    _photo(digits[1]).save(folder / "dir.png" / "inner.png")
    np.save(folder / "good.npy", digits[2:5])
    idx.write_images(folder / "good-idx3-ubyte.gz", digits[5:7])
    (folder / ".hidden.png").write_bytes(b"ignored")

    _bomb_png(folder / "bomb.png")
    png, jpg = folder / "whole.png", folder / "whole.jpg"
    _photo(digits[7]).save(png)
    _photo(digits[7]).convert("RGB").save(jpg, quality=90)
    (folder / "truncated.png").write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    (folder / "truncated.jpg").write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    png.unlink()
    jpg.unlink()
    (folder / "zero.png").write_bytes(b"")
    (folder / "notes.txt").write_text("shopping list\n")
    os.mkfifo(folder / "pipe.png")  # opening it would block: it must be refused unopened
    (folder / "broken-link.png").symlink_to(folder / "gone.png")
    np.save(folder / "wrong-shape.npy", np.zeros((4, 27, 27)))
    np.save(folder / "strings.npy", np.array(["abc", "def"]))
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(folder / "whole.npy", digits[:4])
    (folder / "truncated.npy").write_bytes((folder / "whole.npy").read_bytes()[:-100])
    (folder / "whole.npy").unlink()
    (folder / "zero.npy").write_bytes(b"")
    np.savez(folder / "archive.npz", a=digits[:2])
    (folder / "archive.npz").rename(folder / "archive.npy")
    idx.write_images(folder / "small-idx3-ubyte", np.zeros((3, 27, 27), dtype=np.uint8))
    idx.write_images(folder / "whole-idx3-ubyte", digits[:4])
    (folder / "short-idx3-ubyte.gz").write_bytes(gzip.compress((folder / "whole-idx3-ubyte").read_bytes()[:-30]))
    (folder / "whole-idx3-ubyte").unlink()
    (folder / "huge-header-idx3-ubyte").write_bytes(struct.pack(">4i", 2051, 10**9, 28, 28) + bytes(100))
    idx.write_labels(folder / "labels-idx1-ubyte", np.arange(5))
    (folder / "zero-idx3-ubyte").write_bytes(b"")
    return folder


GOOD = ["dir.png/inner.png", "good-idx3-ubyte.gz[0]", "good-idx3-ubyte.gz[1]", "good.npy[0]", "good.npy[1]",
        "good.npy[2]", "good.png"]  # fmt: skip


def test_gather_inputs_names_and_skips_every_unusable_input(
    inputs: Path, digits: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="mnistfw.predict"):
        found = gather_inputs([str(inputs), str(inputs / "missing.png")], (28, 28))
    assert time.perf_counter() - started < 5  # the 900-megapixel bomb is refused from its header
    assert sorted(found.names) == GOOD
    images = found.array((28, 28))
    assert images.shape == (7, 28, 28) and images.dtype == np.float32
    np.testing.assert_array_equal(images[found.names.index("good.npy[1]")], digits[3])
    skipped = {s["input"]: s["reason"] for s in found.skipped}
    assert set(skipped) == {*BAD, "missing.png"}, sorted(skipped)
    assert skipped["missing.png"] == "does not exist"
    for name, reason in BAD.items():
        assert reason in skipped[name], (name, skipped[name])
        assert "\n" not in skipped[name]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name, reason in skipped.items():
        assert f"skipped {name}: {reason}" in warnings


def test_bomb_is_refused_without_decoding_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # here only: look at it without Pillow's limit
    with Image.open(bomb) as im:  # a real 30000 x 30000 picture (opening reads only the header)
        assert im.size == (30000, 30000) and im.mode == "1"
    # Peak memory of this program's own address space (VmHWM): ru_maxrss would also count the
    # parent's memory that the child inherited at fork, before it ran this program.
    code = (
        "import re, sys\n"
        "from mnistfw.predict_inputs import gather_inputs\n"
        "found = gather_inputs([sys.argv[1]], (28, 28))\n"
        "print(len(found.names), found.skipped[0]['reason'])\n"
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    summary, peak_kb = result.stdout.splitlines()
    assert summary.startswith("0 picture too large") and "50 megapixels" in summary
    assert int(peak_kb) < 400 * 1024  # decoding would take 900 MB


@pytest.fixture(scope="module")
def model_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("faults_model")
    result = run_cli(
        "mnistfw-train", "data=mnist_sample", "model=baseline_logreg", "visualization=none", "hydra.run.dir=run",
        cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "run"


def test_predict_cli_predicts_the_rest_and_exits_2_only_when_nothing_is_left(
    model_run: Path, inputs: Path, tmp_path: Path
) -> None:
    result = run_cli("mnistfw-predict", f"run_dir={model_run}", f"inputs={inputs}", "hydra.run.dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    report = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(p["input"] for p in report["predictions"]) == GOOD
    assert {s["input"] for s in report["skipped"]} == set(BAD)
    logged = result.stdout + result.stderr
    assert all(f"skipped {name}: " in logged for name in BAD)

    bad_only = [str(inputs / name) for name in ("bomb.png", "wrong-shape.npy", "objects.npy", "pipe.png")]
    result = run_cli(
        "mnistfw-predict", f"run_dir={model_run}", f"inputs=[{','.join(bad_only)}]", "hydra.run.dir=out2", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nothing to predict (4 file(s) could not be read" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "out2").exists()
