"""Hostile and faulty files (issue 9): crafted HDF5 models and checkpoints, FIFOs,
sparse files, bit flips, full or read-only disks, concurrent runs.

Every crafted file is made here with h5py.  The promise under test: one
one-line error (``CheckpointError`` / ``UserError``), never a traceback of
another kind, a hang, a huge allocation or a byte read from outside the file.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from npdpsnn import Network
from npdpsnn.errors import CheckpointError, UserError
from npdpsnn.limits import MAX_CHECKPOINT_BYTES, MAX_T
from npdpsnn.training import files
from npdpsnn.training.checkpoint import (
    CheckpointState, checkpoint_bytes, is_model_file, load_checkpoint, load_network, save_checkpoint, save_model,
)
from npdpsnn.training.files import atomic_write_all, atomic_write_text
from npdpsnn.training.lock import LOCK_NAME, RunLock
from npdpsnn.training.safe_hdf5 import SafeHdf5, seal

SPEC, SHAPE = "4C3S1-P2S2-5", (1, 8, 8)


def _net(seed: int = 0) -> Network:
    return Network.from_spec(SPEC, SHAPE, T=2, seed=seed)


def _state(net: Network, velocity: bool = True) -> CheckpointState:
    rng = np.random.default_rng(0)
    opt = {"velocity": np.linspace(-1, 1, net.num_params), "ema": np.ones(net.num_params)} if velocity else {}
    return CheckpointState(network=net, train_config={"dataset": "mnist"}, accountant={"events": []},
                           rng_sampling=rng.bit_generator.state, rng_noise=rng.bit_generator.state,
                           optimizer=opt, epoch=0, step=0, metrics=[], data_fingerprint="f" * 64)


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    p = tmp_path / "model.h5"
    save_model(p, _net())
    return p


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    p = tmp_path / "checkpoint.h5"
    save_checkpoint(p, _state(_net()))
    return p


def _replace(path: Path, name: str, make) -> None:
    """Delete dataset ``name`` and let ``make(f, name)`` put something else there."""
    with h5py.File(path, "r+") as f:
        del f[name]
        make(f, name)


def _put_text(f: h5py.File, name: str, text: str) -> None:
    """A string attribute as npdpsnn writes them: fixed-length UTF-8."""
    data = text.encode()
    f.attrs.create(name, np.bytes_(data), dtype=h5py.string_dtype("utf-8", len(data)))


def _one_line_error(fn, *args, match: str = "", exc: type[Exception] = CheckpointError) -> str:
    with pytest.raises(exc) as info:
        within_seconds(10, fn, *args)
    msg = str(info.value)
    assert "\n" not in msg and (match.lower() in msg.lower()), msg
    return msg


def within_seconds(seconds: float, fn, *args):
    """``fn(*args)``, failing the test if it has not returned after ``seconds`` (a hang)."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{getattr(fn, '__name__', fn)} hung"
    if "error" in out:
        raise out["error"]
    return out.get("value")


# ----------------------------------------------------------------- round trip
def test_round_trip_and_velocity(checkpoint: Path, model: Path) -> None:
    net = _net()
    state = load_checkpoint(checkpoint)
    assert np.array_equal(state.network.theta, net.theta)
    assert np.array_equal(state.optimizer["velocity"], np.linspace(-1, 1, net.num_params))
    assert np.array_equal(state.optimizer["ema"], np.ones(net.num_params))
    assert np.array_equal(load_network(model).theta, net.theta)
    assert is_model_file(model) and not is_model_file(checkpoint)
    assert load_checkpoint(checkpoint, with_optimizer=False).optimizer == {}


def test_load_network_never_reads_the_velocity(checkpoint: Path, monkeypatch) -> None:
    read = []
    original = SafeHdf5.read
    monkeypatch.setattr(SafeHdf5, "read", lambda self, name, *a: read.append(name) or original(self, name, *a))
    load_network(checkpoint)
    load_checkpoint(checkpoint, with_optimizer=False)
    assert read and not [n for n in read if n.startswith("optimizer")]


def test_corrupt_velocity_fails_resume_but_not_eval(checkpoint: Path) -> None:
    with h5py.File(checkpoint, "r+") as f:
        f["optimizer/velocity"][3] += 1e-9  # a silent change the checksum must catch
    assert load_network(checkpoint).num_params > 0
    _one_line_error(load_checkpoint, checkpoint, match="checksum mismatch in dataset 'optimizer/velocity'")


# ----------------------------------------------------------------- data outside the file
def test_external_storage_is_refused_and_secret_not_read(tmp_path: Path, model: Path) -> None:
    secret = tmp_path / "secret.bin"
    np.full(5, 42.0, np.float32).tofile(secret)
    _replace(model, "params/fc1.bias",
             lambda f, n: f.create_dataset(n, shape=(5,), dtype="f4", external=[(str(secret), 0, 20)]))
    with h5py.File(model) as f:  # h5py alone would hand the secret over
        assert f["params/fc1.bias"][0] == 42.0
    for load in (load_network, load_checkpoint):
        _one_line_error(load, model, match="external file")


def test_external_storage_on_a_fifo_does_not_hang(tmp_path: Path, checkpoint: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _replace(checkpoint, "params/fc1.bias",
             lambda f, n: f.create_dataset(n, shape=(5,), dtype="f4", external=[(str(fifo), 0, 20)]))
    _one_line_error(load_checkpoint, checkpoint, match="external file")
    _one_line_error(load_network, checkpoint, match="external file")


def test_external_link_is_refused(tmp_path: Path, model: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["b"] = np.zeros(5, np.float32)
    _replace(model, "params/fc1.bias", lambda f, n: f.__setitem__(n, h5py.ExternalLink(str(other), "/b")))
    _one_line_error(load_network, model, match="ExternalLink")
    with h5py.File(model, "r+") as f:  # a whole group linked to another file
        del f["params"]
        f["params"] = h5py.ExternalLink(str(other), "/")
    _one_line_error(load_network, model, match="ExternalLink")


def test_soft_links_are_refused(model: Path) -> None:
    def soft(f, n):
        f.create_dataset("elsewhere", data=np.zeros(5, np.float32))
        f[n] = h5py.SoftLink("/elsewhere")

    _replace(model, "params/fc1.bias", soft)
    _one_line_error(load_network, model, match="SoftLink")


def test_virtual_dataset_is_refused(tmp_path: Path, model: Path) -> None:
    other = tmp_path / "source.h5"
    with h5py.File(other, "w") as f:
        f["b"] = np.ones(5, np.float32)

    def virtual(f, n):
        layout = h5py.VirtualLayout(shape=(5,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(other), "b", shape=(5,))
        f.create_virtual_dataset(n, layout)

    _replace(model, "params/fc1.bias", virtual)
    _one_line_error(load_network, model, match="virtual dataset")


def test_filters_and_unexpected_datasets_are_refused(model: Path) -> None:
    bias = load_network(model).params["fc1.bias"].copy()
    _replace(model, "params/fc1.bias", lambda f, n: f.create_dataset(n, data=bias, compression="gzip"))
    _one_line_error(load_network, model, match="filters")
    _replace(model, "params/fc1.bias", lambda f, n: f.create_dataset(n, data=bias))
    with h5py.File(model, "r+") as f:
        f["extra"] = np.zeros(3, np.float32)
        seal(f)
    _one_line_error(load_network, model, match="unexpected datasets ['extra']")
    with h5py.File(model, "r+") as f:  # a model file holds no optimiser state
        del f["extra"]
        f["optimizer/velocity"] = np.zeros(_net().num_params)
        seal(f)
    _one_line_error(load_network, model, match="unexpected datasets ['optimizer/velocity']")


def test_hard_link_cycle_is_bounded(model: Path) -> None:
    with h5py.File(model, "r+") as f:
        g = f.create_group("loop")
        g["again"] = g  # a hard link to itself: an endless tree
    _one_line_error(load_network, model, match="objects")


# ----------------------------------------------------------------- memory bombs
def test_declared_shape_2_40_is_one_error(model: Path, checkpoint: Path) -> None:
    _replace(model, "params/fc1.bias", lambda f, n: f.create_dataset(n, shape=(2**40,), dtype="f4"))
    _one_line_error(load_network, model, match="declares shape")
    _replace(checkpoint, "optimizer/velocity", lambda f, n: f.create_dataset(n, shape=(2**40,), dtype="f8"))
    for load in (load_network, load_checkpoint):
        _one_line_error(load, checkpoint, match="declares shape")


def test_wrong_shapes_are_refused_before_reading(model: Path, checkpoint: Path) -> None:
    _replace(checkpoint, "optimizer/velocity", lambda f, n: f.create_dataset(n, data=np.zeros(7)))
    with h5py.File(checkpoint, "r+") as f:
        seal(f)
    _one_line_error(load_checkpoint, checkpoint, match="'optimizer/velocity' has shape (7,)")
    _replace(model, "params/fc1.bias", lambda f, n: f.create_dataset(n, data=np.zeros(6, np.float32)))
    with h5py.File(model, "r+") as f:
        seal(f)
    _one_line_error(load_network, model, match="has shape (6,), expected (5,)")


@pytest.mark.parametrize("attr, value, match", [
    ("model_config", {"T": MAX_T + 1}, "limit"),
    ("model_config", {"T": 10**8}, "limit"),
    ("model_config", {"T": 2, "evil": 1}, "unknown keys"),
    ("spec", "99999999C5S1-10", "limit"),
    ("spec", "１６C3S1-10", "ascii"),
    ("input_shape", [1, 2**20, 2**20], "limit"),
    ("input_shape", [1, 8], "three integers"),
])
def test_huge_or_bad_model_attributes(model: Path, attr: str, value, match: str) -> None:
    with h5py.File(model, "r+") as f:
        if attr == "model_config":
            value = {**json.loads(f.attrs[attr]), **value}
        f.attrs[attr] = value if isinstance(value, str) else json.dumps(value)
        seal(f)
    _one_line_error(load_network, model, match=match)


@pytest.mark.parametrize("text, match", [("[" * 100_000, "not valid JSON"), ("{not json", "not valid JSON"),
                                         ("x" * 20_000_000, "more than the limit")])
def test_bad_json_attributes(model: Path, text: str, match: str) -> None:
    with h5py.File(model, "r+") as f:
        _put_text(f, "model_config", text)
        if len(text) < 1_000_000:
            seal(f)  # (seal itself refuses the over-long one)
    _one_line_error(load_network, model, match=match)


def test_variable_length_strings_are_refused(model: Path) -> None:
    """Reading a corrupt variable-length string can loop forever inside HDF5: never read one."""
    with h5py.File(model, "r+") as f:
        f.attrs["spec"] = SPEC  # h5py writes str as a variable-length string
    _one_line_error(load_network, model, match="'spec' is a variable-length string")
    assert is_model_file(model)  # the format tag is still fixed-length
    with h5py.File(model, "r+") as f:
        seal(f)  # rewrites it fixed-length
    assert load_network(model).spec == SPEC


def test_attribute_arrays_are_refused(model: Path) -> None:
    with h5py.File(model, "r+") as f:
        f.attrs["spec"] = np.zeros(1000, np.int64)
    _one_line_error(load_network, model, match="'spec' is not a single value")


def test_missing_attribute_is_named(model: Path) -> None:
    with h5py.File(model, "r+") as f:
        del f.attrs["model_config"]
        seal(f)
    _one_line_error(load_network, model, match="lacks attribute 'model_config'")


# ----------------------------------------------------------------- values
def test_float64_that_overflows_float32_is_refused(model: Path) -> None:
    bias = np.zeros(5)
    bias[2] = 1e39  # finite as float64, inf as float32
    _replace(model, "params/fc1.bias", lambda f, n: f.create_dataset(n, data=bias))
    with h5py.File(model, "r+") as f:
        seal(f)
    _one_line_error(load_network, model, match="infinity")
    bias[2] = 0.5
    _replace(model, "params/fc1.bias", lambda f, n: f.create_dataset(n, data=bias))
    with h5py.File(model, "r+") as f:
        seal(f)
    assert load_network(model).params["fc1.bias"][2] == 0.5  # float64 that fits is fine


def test_nan_weights_are_refused(model: Path) -> None:
    with h5py.File(model, "r+") as f:
        f["params/conv1.weight"][0, 0, 0, 0] = np.nan
        seal(f)
    _one_line_error(load_network, model, match="NaN")


# ----------------------------------------------------------------- checksums
def test_edited_attribute_is_detected_and_seal_accepts_it(checkpoint: Path) -> None:
    with h5py.File(checkpoint, "r+") as f:
        _put_text(f, "data_fingerprint", "0" * 64)
    _one_line_error(load_checkpoint, checkpoint, match="checksum mismatch in the attributes")
    with h5py.File(checkpoint, "r+") as f:
        seal(f)  # a deliberate edit (as tests do) re-seals the file
    assert load_checkpoint(checkpoint).data_fingerprint == "0" * 64


def test_bit_flip_in_weights_is_detected(model: Path) -> None:
    data = bytearray(model.read_bytes())
    weights = np.asarray(load_network(model).params["fc1.weight"], np.float32).tobytes()
    at = bytes(data).find(weights)
    assert at > 0
    data[at + 17] ^= 0x04
    model.write_bytes(bytes(data))
    _one_line_error(load_network, model, match="checksum mismatch in dataset 'params/fc1.weight'")


def test_random_bit_flips_never_pass_silently(model: Path) -> None:
    """Each flip gives one CheckpointError or the very same weights -- never other values or another error."""
    good = load_network(model).theta.copy()
    original = model.read_bytes()
    rng = np.random.default_rng(9)
    outcomes = {"error": 0, "same": 0}
    for pos in rng.integers(0, len(original), 300):
        data = bytearray(original)
        data[pos] ^= 1 << int(rng.integers(8))
        model.write_bytes(bytes(data))
        try:
            theta = load_network(model).theta
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            outcomes["error"] += 1
        else:
            assert np.array_equal(theta, good), f"flip at byte {pos} changed the weights silently"
            outcomes["same"] += 1
    assert outcomes["error"] > 0


def test_version_1_files_are_refused_clearly(model: Path) -> None:
    with h5py.File(model, "r+") as f:
        f.attrs["format_version"] = 1
        del f.attrs["checksum"]
    _one_line_error(load_network, model, match="format version 1; this npdpsnn reads version 2")


def test_not_hdf5_and_truncated(tmp_path: Path, model: Path) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    _one_line_error(load_network, junk, match=str(junk))
    model.write_bytes(model.read_bytes()[:3000])
    _one_line_error(load_network, model, match=str(model))
    assert not is_model_file(junk) and not is_model_file(model)


# ----------------------------------------------------------------- not regular files
def test_fifo_as_the_file_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "checkpoint.h5"
    os.mkfifo(fifo)
    _one_line_error(load_network, fifo, match="not a regular file")
    _one_line_error(load_checkpoint, fifo, match="not a regular file")
    _one_line_error(load_checkpoint, tmp_path, match="not a regular file")  # the run folder's checkpoint.h5
    assert within_seconds(10, is_model_file, fifo) is False


def test_device_as_the_file(tmp_path: Path) -> None:
    _one_line_error(load_network, "/dev/zero", match="not a regular file")
    assert is_model_file("/dev/zero") is False


def test_sparse_huge_file_is_refused_unread(tmp_path: Path) -> None:
    p = tmp_path / "model.h5"
    with open(p, "wb") as f:
        f.truncate(MAX_CHECKPOINT_BYTES + 1)  # sparse: no disk used, never read
    _one_line_error(load_network, p, match="more than the limit")


def test_over_long_paths_are_one_line(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 300)
    for load in (load_network, load_checkpoint):
        _one_line_error(load, long, match="File name too long")
    assert is_model_file(long) is False


# ----------------------------------------------------------------- failed writes
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_full_disk_on_rename_keeps_previous_file(model: Path, monkeypatch) -> None:
    before = model.read_bytes()
    monkeypatch.setattr(os, "replace", _enospc)
    msg = _one_line_error(save_model, model, _net(seed=1), exc=UserError)
    assert msg == f"cannot write {model}: No space left on device"
    monkeypatch.undo()
    assert model.read_bytes() == before and _only(model.parent) == ["model.h5"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_failing_writer_removes_its_temporary_file(checkpoint: Path, monkeypatch, code: int) -> None:
    before = checkpoint.read_bytes()

    def half_then_fail(tmp: str, data: bytes) -> None:
        Path(tmp).write_bytes(data[: len(data) // 2])
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files, "_write_bytes", half_then_fail)
    msg = _one_line_error(save_checkpoint, checkpoint, _state(_net(seed=1)), exc=UserError)
    assert msg == f"cannot write {checkpoint}: {os.strerror(code)}"
    assert checkpoint.read_bytes() == before and _only(checkpoint.parent) == ["checkpoint.h5"]
    monkeypatch.undo()
    assert np.array_equal(load_checkpoint(checkpoint).network.theta, _net().theta)


def test_temporary_file_cannot_be_created(tmp_path: Path, monkeypatch) -> None:
    def erofs(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(files.tempfile, "mkstemp", erofs)
    msg = _one_line_error(atomic_write_text, tmp_path / "metrics.csv", "x", exc=UserError)
    assert msg == f"cannot write {tmp_path / 'metrics.csv'}: Read-only file system"


def test_name_too_long(tmp_path: Path) -> None:
    _one_line_error(atomic_write_text, tmp_path / ("x" * 300), "x", exc=UserError, match="File name too long")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (chmod has no effect)")
def test_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "model.h5").write_bytes(b"old")
    ro.chmod(0o500)
    try:
        msg = _one_line_error(save_model, ro / "model.h5", _net(), exc=UserError)
        assert msg == f"cannot write {ro / 'model.h5'}: Permission denied"
        assert (ro / "model.h5").read_bytes() == b"old" and _only(ro) == ["model.h5"]
    finally:
        ro.chmod(0o700)


def test_write_all_changes_nothing_when_one_file_fails(tmp_path: Path, monkeypatch) -> None:
    a, b = tmp_path / "metrics.csv", tmp_path / "checkpoint.h5"
    a.write_text("old a")
    b.write_text("old b")
    calls = []
    real = files._write_bytes

    def second_fails(tmp: str, data: bytes) -> None:
        calls.append(tmp)
        if len(calls) == 2:
            _enospc()
        real(tmp, data)

    monkeypatch.setattr(files, "_write_bytes", second_fails)
    msg = _one_line_error(atomic_write_all, [(a, b"new a"), (b, checkpoint_bytes(_state(_net())))], exc=UserError)
    assert msg == f"cannot write {b}: No space left on device"
    assert a.read_text() == "old a" and b.read_text() == "old b" and _only(tmp_path) == ["checkpoint.h5", "metrics.csv"]
    monkeypatch.undo()
    atomic_write_all([(a, b"new a"), (b, checkpoint_bytes(_state(_net())))])
    assert a.read_text() == "new a" and load_checkpoint(b).epoch == 0


def test_hdf5_is_built_in_memory(tmp_path: Path, monkeypatch) -> None:
    """h5py never writes to disk (it can crash on a full one): only plain Python I/O does."""
    opened = []
    real = h5py.File

    def spy(name, mode="r", *args, **kwargs):
        opened.append((mode, kwargs.get("driver"), kwargs.get("backing_store")))
        return real(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", spy)
    save_checkpoint(tmp_path / "checkpoint.h5", _state(_net()))
    save_model(tmp_path / "model.h5", _net())
    assert opened and all(m == ("w", "core", False) for m in opened)


# ----------------------------------------------------------------- run-folder lock
_HOLD = ("import sys, time\n"
         "from npdpsnn.training.lock import RunLock\n"
         "RunLock(sys.argv[1]).acquire()\n"
         "print('locked', flush=True)\n"
         "time.sleep(120)\n")


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_and_killed_holder_is_stale(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        msg = _one_line_error(RunLock(run).acquire, exc=UserError)
        assert msg == f"run folder {run} is in use by process {proc.pid}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert (run / LOCK_NAME).read_text().strip() == str(proc.pid)  # left behind, but no longer a lock
    with RunLock(run):
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
        _one_line_error(RunLock(run).acquire, exc=UserError, match=f"in use by process {os.getpid()}")
    assert not (run / LOCK_NAME).exists() and run.is_dir()  # the killed run's folder is kept


def test_lock_removes_only_what_it_created(tmp_path: Path) -> None:
    new = tmp_path / "a" / "b"
    with RunLock(new):
        assert new.is_dir()
    assert not (tmp_path / "a").exists()  # an empty run folder is not left behind
    with RunLock(new):
        (new / "config.json").write_text("{}")
    assert _only(new) == ["config.json"]
    with pytest.raises(UserError, match="cannot create run folder"):
        RunLock(tmp_path / "a" / "b" / "config.json" / "x").acquire()
