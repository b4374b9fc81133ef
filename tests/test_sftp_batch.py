"""Many files over one connection at once (transfers.sftp_batch, through SftpSession's
read_small_files, read_and_get_files and remove_many), against a real OpenSSH sshd
on loopback.

More files than are opened at once and more bytes than are asked for at once; sizes listed
wrong in both directions; reads the server answers short; files gone meanwhile; a local copy
that cannot be written; a refused removal; a connection cut in the middle of a batch.
"""

import hashlib
import os
from pathlib import Path

import pytest

from tests.support.fault_proxy import Fate, FaultProxy
from tests.support.sshd import running_sshd, sshd_fixture
from transfers import sftp_batch
from transfers.sftp import SftpError, SftpUnreachable

pytestmark = pytest.mark.system

MIB = 1 << 20
sshd = sshd_fixture()


def put(folder: Path, name: str, size: int) -> bytes:
    data = os.urandom(size)
    (folder / name).write_bytes(data)
    return data


def get_files(session, files: dict[str, tuple[int, Path]]) -> dict:
    """The files downloaded alone, with no small files read beside them."""
    return session.read_and_get_files({}, 0, files)[1]


def digest(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def test_small_files_are_read_whole_more_than_are_opened_at_once(sshd):
    sizes = [0, 1, 1000, 261_119, 261_120, 261_121, 600_000] * 20  # 140 files
    written = {f"m{i}.xml": put(sshd.root, f"m{i}.xml", size) for i, size in enumerate(sizes)}
    assert len(written) > sftp_batch.FILES_AT_ONCE
    with sshd.session() as session:
        read = session.read_small_files({name: len(data) for name, data in written.items()}, MIB)
        assert read == written
        assert session.connected


def test_a_server_that_caps_open_files_has_the_files_read_within_its_cap(tmp_path):
    """OpenSSH at its process's file limit answers an open with a bare failure: the batch then
    opens no more at once than the server took, and every file is read."""
    with running_sshd(tmp_path, open_files=40) as capped:
        small = {f"m{i}.xml": put(capped.root, f"m{i}.xml", 300 + i) for i in range(70)}
        large = {f"d{i}.csv": put(capped.root, f"d{i}.csv", 70_000 + i) for i in range(70)}
        local = {name: tmp_path / f"{name}.part" for name in large}
        with capped.session() as session:
            read, got = session.read_and_get_files(
                {name: len(data) for name, data in small.items()},
                MIB,
                {name: (len(data), local[name]) for name, data in large.items()},
            )
            assert session.connected
    assert read == small
    assert got == {name: digest(data) for name, data in large.items()}


def test_a_size_listed_wrong_still_reads_the_whole_file(sshd):
    longer = put(sshd.root, "longer.xml", 3 * 261_120 + 5)
    shorter = put(sshd.root, "shorter.xml", 100)
    with sshd.session() as session:
        # Listed at 10 bytes, it is longer; listed at a megabyte, it is short.
        read = session.read_small_files({"longer.xml": 10, "shorter.xml": MIB}, 4 * MIB)
    assert read == {"longer.xml": longer, "shorter.xml": shorter}


def test_a_file_over_the_limit_comes_back_longer_than_the_limit_not_whole(sshd):
    put(sshd.root, "huge.xml", 5 * MIB)
    with sshd.session() as session:
        [data] = session.read_small_files({"huge.xml": 100}, MIB).values()
    assert MIB < len(data) < 5 * MIB


def test_a_file_gone_meanwhile_is_none_and_the_others_are_read(sshd):
    kept = put(sshd.root, "kept.xml", 500)
    with sshd.session() as session:
        read = session.read_small_files({"gone.xml": 500, "kept.xml": 500}, MIB)
    assert read == {"gone.xml": None, "kept.xml": kept}


def test_files_are_downloaded_at_once_each_whole_and_fsynced(sshd, tmp_path):
    # More than are opened at once, more bytes than are asked for at once, sizes listed wrong.
    sizes = [0, 17, 261_120, 261_121, 1_000_000, 3 * MIB + 7] * 8 + [17] * 90
    written = {f"d{i}.csv": put(sshd.root, f"d{i}.csv", size) for i, size in enumerate(sizes)}
    assert len(sizes) > sftp_batch.FILES_AT_ONCE
    assert sum(sizes) > 2 * sftp_batch.BYTES_IN_FLIGHT
    hints = {
        name: (len(data), 0, 2 * len(data))[i % 3] for i, (name, data) in enumerate(written.items())
    }
    local = {name: tmp_path / f"{name}.part" for name in written}
    with sshd.session() as session:
        got = get_files(session, {name: (hints[name], local[name]) for name in written})
        assert session.connected
    assert got == {name: digest(data) for name, data in written.items()}
    assert all(local[name].read_bytes() == data for name, data in written.items())


def test_small_files_are_read_and_others_downloaded_in_the_same_batch(sshd, tmp_path):
    small = {f"m{i}.xml": put(sshd.root, f"m{i}.xml", 400 + i) for i in range(70)}
    large = {f"d{i}.csv": put(sshd.root, f"d{i}.csv", 200_000 + i) for i in range(70)}
    local = {name: tmp_path / f"{name}.part" for name in [*large, "gone.csv"]}
    with sshd.session() as session:
        read, got = session.read_and_get_files(
            {name: len(data) for name, data in small.items()} | {"gone.xml": 400},
            MIB,
            {name: (len(data), local[name]) for name, data in large.items()}
            | {"gone.csv": (10, local["gone.csv"])},
        )
        assert session.connected
    assert read == small | {"gone.xml": None}
    assert got == {name: digest(data) for name, data in large.items()} | {"gone.csv": None}
    assert all(local[name].read_bytes() == data for name, data in large.items())


def test_reads_the_server_answers_short_are_asked_again_for_the_rest(sshd, tmp_path):
    """OpenSSH answers at most its own read length (limits@openssh.com); asking for more makes
    every read come back short, as any server may answer."""
    data = put(sshd.root, "big.csv", 5 * MIB + 3)
    with sshd.session() as session:
        session._read_size = 1 * MIB
        got = get_files(session, {"big.csv": (len(data), tmp_path / "big.part")})
        assert session.read_small_files({"big.csv": 0}, 8 * MIB) == {"big.csv": data}
    assert got == {"big.csv": digest(data)}
    assert (tmp_path / "big.part").read_bytes() == data


# Written block by block as the reads come in, or gathered in memory and written whole.
@pytest.mark.parametrize("size", [300_000, 1000])
def test_a_local_copy_that_cannot_be_written_fails_alone(sshd, tmp_path, size):
    good = put(sshd.root, "good.csv", size)
    put(sshd.root, "bad.csv", size)
    nowhere = tmp_path / "missing-folder" / "bad.part"
    with sshd.session() as session:
        got = get_files(
            session, {"bad.csv": (size, nowhere), "good.csv": (size, tmp_path / "good.part")}
        )
        assert session.connected
    assert isinstance(got["bad.csv"], FileNotFoundError)
    assert got["good.csv"] == digest(good)
    assert (tmp_path / "good.part").read_bytes() == good


def test_files_gone_meanwhile_are_none(sshd, tmp_path):
    there = put(sshd.root, "there.csv", 10)
    with sshd.session() as session:
        got = get_files(
            session,
            {"gone.csv": (10, tmp_path / "gone.part"), "there.csv": (10, tmp_path / "t.part")},
        )
    assert got == {"gone.csv": None, "there.csv": digest(there)}


def test_a_folder_of_many_readdir_replies_lists_whole(sshd):
    """OpenSSH answers a READDIR with at most 100 names: 1000 files take several waves."""
    folder = sshd.root / "IN"
    folder.mkdir()
    names = {f"f{i:04}.csv" for i in range(1000)}
    for name in names:
        (folder / name).write_bytes(b"x" * (len(name) % 7))
    assert len(names) > 100 * sftp_batch.READDIRS_IN_FLIGHT
    with sshd.session() as session:
        listed = session.list_entries("IN")
        assert session.list_entries("IN") == listed  # the handles went: listing again works
        with pytest.raises(SftpError, match="no-such-folder"):
            session.list_entries("no-such-folder")
        assert session.connected
    assert {name: size for name, (size, _modified) in listed.items()} == {
        name: len(name) % 7 for name in names
    }


def test_removals_go_out_together_and_a_refused_one_is_raised_after_the_rest(sshd):
    for i in range(40):
        put(sshd.root, f"r{i}.csv", 10)
    (sshd.root / "a-folder").mkdir()
    with sshd.session() as session:
        assert session.remove_many([f"r{i}.csv" for i in range(20)] + ["never.csv"]) == {
            "never.csv"
        }
        with pytest.raises(SftpError, match="a-folder"):
            session.remove_many(["a-folder"] + [f"r{i}.csv" for i in range(20, 40)])
        assert session.connected  # a refusal, not a broken connection
    assert not list(sshd.root.glob("r*.csv"))
    assert (sshd.root / "a-folder").is_dir()


@pytest.mark.parametrize("kind", ["cut", "stall"])
def test_a_connection_broken_in_the_middle_of_a_batch_fails_it_plainly(sshd, tmp_path, kind):
    written = {f"c{i}.csv": put(sshd.root, f"c{i}.csv", 400_000) for i in range(20)}
    local = {name: tmp_path / f"{name}.part" for name in written}
    plan = lambda _connection: Fate(kind, 3 * MIB)  # noqa: E731 - every connection alike
    with (
        FaultProxy(sshd.port, plan=plan, linger=0.2) as proxy,
        sshd.session(proxy.port, timeout=2.0) as session,
    ):
        with pytest.raises(SftpUnreachable):
            get_files(session, {name: (400_000, local[name]) for name in written})
        assert not session.connected
    assert proxy.faults


def test_small_files_are_written_whole_more_than_are_opened_at_once(sshd):
    sizes = [0, 1, 1000, 261_119, 261_120, 261_121, 600_000] * 20  # 140 files
    files = {f"d{i}.csv": os.urandom(size) for i, size in enumerate(sizes)}
    (sshd.root / "d3.csv").write_bytes(b"an earlier, longer content" * 100)  # emptied first
    assert len(files) > sftp_batch.FILES_AT_ONCE
    with sshd.session() as session:
        assert session.put_small_files(files) == dict.fromkeys(files)
        assert session.connected
    for name, data in files.items():
        assert (sshd.root / name).read_bytes() == data


def test_a_file_the_server_refuses_fails_alone(sshd):
    files = {"a.csv": b"a" * 5000, "no-such-folder/b.csv": b"b" * 5000, "c.csv": b"c"}
    with sshd.session() as session:
        results = session.put_small_files(files)
        assert session.connected
    assert results["a.csv"] is None and results["c.csv"] is None
    assert isinstance(results["no-such-folder/b.csv"], SftpError)
    assert (sshd.root / "a.csv").read_bytes() == files["a.csv"]
    assert (sshd.root / "c.csv").read_bytes() == files["c.csv"]


@pytest.mark.parametrize("acted_on_at_close", [False, True])
def test_a_trigger_not_written_whole_is_removed_before_it_is_closed(sshd, acted_on_at_close):
    # Every write to it is refused (no space); removing it removes the link, not the device.
    (sshd.root / "full.trigger").symlink_to("/dev/full")
    files = {"full.trigger": b"<trigger/>" * 100, "ok.trigger": b"<trigger/>"}
    with sshd.session() as session:
        results = session.put_small_files(files, acted_on_at_close=acted_on_at_close)
    assert isinstance(results["full.trigger"], SftpError)
    assert results["ok.trigger"] is None
    # A data file may stay partly written for its retry to replace; a trigger never does.
    assert (sshd.root / "full.trigger").is_symlink() is not acted_on_at_close
    assert Path("/dev/full").is_char_device()
