"""NFSv3 (RFC 1813 §3), MOUNT v3 (§5) and port mapper codecs; status exceptions; fuzzing."""

from __future__ import annotations

import contextlib
import errno
import struct
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swapio_nfs._errors import (
    MOUNT_ERRORS,
    NFS_ERRORS,
    MountAccesError,
    MountError,
    MountNoEntError,
    Mountstat3,
    NfsAccesError,
    NfsBadHandleError,
    NfsError,
    NfsExistError,
    NfsIOError,
    NfsJukeboxError,
    NfsNoEntError,
    NfsStaleError,
    Nfsstat3,
    XdrDecodeError,
    mount_error,
    nfs_error,
)
from swapio_nfs._mount import MountResult, decode_mnt_res, encode_dirpath
from swapio_nfs._nfs3 import (
    Access3,
    CreateMode,
    Fattr3,
    Ftype3,
    NfsTime3,
    Sattr3,
    StableHow,
    TimeHow,
    decode_access_res,
    decode_commit_res,
    decode_create_res,
    decode_fsinfo_res,
    decode_fsstat_res,
    decode_getattr_res,
    decode_lookup_res,
    decode_read_res,
    decode_remove_res,
    decode_setattr_res,
    decode_write_res,
    encode_access_args,
    encode_commit_args,
    encode_create_args,
    encode_diropargs,
    encode_fh_args,
    encode_read_args,
    encode_setattr_args,
    encode_write_args,
)
from swapio_nfs._portmap import IpProto, decode_getport_res, encode_getport_args
from swapio_nfs._xdr import Packer

from swapio.errors import BackendIOError, ProtocolError

FH = b"\x01\x02\x03\x04\x05"
ATTRS = Fattr3(
    Ftype3.NF3REG, 0o600, 1, 0, 0, 8192, 8192, (0, 0), 7, 99,
    NfsTime3(1, 2), NfsTime3(3, 4), NfsTime3(5, 6),
)  # fmt: skip


def words(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def post_op(attrs: Fattr3 | None = ATTRS) -> bytes:
    p = Packer()
    p.pack_bool(attrs is not None)
    if attrs is not None:
        attrs.pack(p)
    return p.get_buffer()


def wcc(after: Fattr3 | None = ATTRS) -> bytes:
    return words(1) + struct.pack(">Q", 4096) + words(1, 2, 3, 4) + post_op(after)


# ------------------------------------------------------------------ arguments


def test_fh_args_are_an_opaque_handle() -> None:
    assert encode_fh_args(FH) == words(5) + FH + b"\0\0\0"


def test_read_args() -> None:
    assert encode_read_args(FH, 4096, 8192) == (
        words(5) + FH + b"\0\0\0" + struct.pack(">QI", 4096, 8192)
    )


def test_write_args_reference_the_page_buffers_without_copying() -> None:
    page = bytearray(b"p" * 6)
    parts = encode_write_args(FH, 8, [page], StableHow.UNSTABLE)
    assert parts[1] is page
    assert b"".join(bytes(p) for p in parts) == (
        words(5) + FH + b"\0\0\0" + struct.pack(">QIII", 8, 6, 0, 6) + b"pppppp\0\0"
    )


def test_commit_args() -> None:
    assert encode_commit_args(FH, 0, 0) == words(5) + FH + b"\0\0\0" + bytes(12)


def test_diropargs() -> None:
    assert encode_diropargs(FH, "swap") == words(5) + FH + b"\0\0\0" + words(4) + b"swap"


def test_create_guarded_with_mode() -> None:
    data = encode_create_args(FH, "f", CreateMode.GUARDED, Sattr3(mode=0o600))
    assert data == (
        words(5) + FH + b"\0\0\0" + words(1) + b"f\0\0\0"
        + words(CreateMode.GUARDED, 1, 0o600, 0, 0, 0, 0, 0)
    )  # fmt: skip


def test_create_exclusive_carries_the_verifier() -> None:
    data = encode_create_args(FH, "f", CreateMode.EXCLUSIVE, verifier=b"12345678")
    assert data.endswith(words(CreateMode.EXCLUSIVE) + b"12345678")


def test_setattr_size_and_server_time() -> None:
    data = encode_setattr_args(FH, Sattr3(size=4096, mtime=TimeHow.SET_TO_SERVER_TIME))
    assert data.endswith(words(0, 0, 0, 1) + struct.pack(">Q", 4096) + words(0, 1) + words(0))


def test_access_args() -> None:
    assert encode_access_args(FH, Access3.READ | Access3.MODIFY).endswith(words(5))


# ------------------------------------------------------------------ results


def test_getattr_result() -> None:
    p = Packer()
    ATTRS.pack(p)
    assert decode_getattr_res(words(0) + p.get_buffer()) == ATTRS


def test_lookup_result_and_failure() -> None:
    res = decode_lookup_res(words(0, 5) + FH + b"\0\0\0" + post_op() + post_op(None))
    assert (res.fh, res.attributes, res.dir_attributes) == (FH, ATTRS, None)
    with pytest.raises(NfsNoEntError, match="LOOKUP \\('swap'\\)"):
        decode_lookup_res(words(2) + post_op(None), "swap")


def test_access_result() -> None:
    res = decode_access_res(words(0) + post_op(None) + words(0x5))
    assert res.access == Access3.READ | Access3.MODIFY


def test_read_result_is_a_view_of_the_reply() -> None:
    data = words(0) + post_op() + words(3, 1, 3) + b"abc\0"
    res = decode_read_res(data, 4096)
    assert (res.count, res.eof, bytes(res.data)) == (3, True, b"abc")
    assert isinstance(res.data, memoryview)


def test_read_result_count_must_match_the_data() -> None:
    with pytest.raises(XdrDecodeError, match="count is 4 but the data has 3"):
        decode_read_res(words(0) + post_op(None) + words(4, 0, 3) + b"abc\0", 4096)


def test_read_result_larger_than_requested_is_refused() -> None:
    with pytest.raises(XdrDecodeError, match="at most 2"):
        decode_read_res(words(0) + post_op(None) + words(3, 0, 3) + b"abc\0", 2)


def test_write_result_carries_the_verifier() -> None:
    res = decode_write_res(words(0) + wcc() + words(4096, 0) + b"VERIFIER")
    assert (res.count, res.committed, res.verifier) == (4096, StableHow.UNSTABLE, b"VERIFIER")
    assert res.wcc.after == ATTRS


def test_write_result_with_bad_committed_value() -> None:
    with pytest.raises(XdrDecodeError, match="committed must be 0..2"):
        decode_write_res(words(0) + wcc(None) + words(4096, 3) + b"VERIFIER")


def test_commit_result() -> None:
    assert decode_commit_res(words(0) + wcc(None) + b"ABCDEFGH").verifier == b"ABCDEFGH"


def test_create_result() -> None:
    res = decode_create_res(words(0, 1, 5) + FH + b"\0\0\0" + post_op() + wcc(None))
    assert res.fh == FH
    with pytest.raises(NfsError):
        decode_create_res(words(Nfsstat3.NFS3ERR_EXIST) + wcc(None), "f")


def test_remove_and_setattr_results() -> None:
    assert decode_remove_res(words(0) + wcc(None)).after is None
    assert decode_setattr_res(words(0) + wcc()).after == ATTRS
    with pytest.raises(NfsAccesError):
        decode_setattr_res(words(13) + wcc(None))


def test_fsinfo_result() -> None:
    data = (
        words(0) + post_op(None) + words(1 << 20, 65536, 512, 1 << 20, 65536, 512, 4096)
        + struct.pack(">Q", 2**63 - 1) + words(0, 1, 0x1B)
    )  # fmt: skip
    res = decode_fsinfo_res(data)
    assert (res.rtmax, res.wtmax, res.maxfilesize) == (1 << 20, 1 << 20, 2**63 - 1)


def test_fsstat_result() -> None:
    data = words(0) + post_op(None) + struct.pack(">6Q", 1, 2, 3, 4, 5, 6) + words(0)
    res = decode_fsstat_res(data)
    assert (res.tbytes, res.afiles) == (1, 6)


# ------------------------------------------------------------------ status mapping


@pytest.mark.parametrize("status", [s for s in Nfsstat3 if s != Nfsstat3.NFS3_OK])
def test_every_nfsstat3_is_reported_with_its_name_meaning_and_errno(status: Nfsstat3) -> None:
    exc = nfs_error("WRITE", status)
    assert isinstance(exc, NfsError)
    assert isinstance(exc, BackendIOError)
    assert type(exc) is NFS_ERRORS.get(status, NfsError)
    assert exc.status == status
    assert status.name in str(exc)
    assert exc.meaning in str(exc)
    assert exc.meaning != "unknown status"
    assert "WRITE" in str(exc)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (Nfsstat3.NFS3ERR_NOENT, NfsNoEntError),
        (Nfsstat3.NFS3ERR_EXIST, NfsExistError),
        (Nfsstat3.NFS3ERR_ACCES, NfsAccesError),
        (Nfsstat3.NFS3ERR_IO, NfsIOError),
        (Nfsstat3.NFS3ERR_STALE, NfsStaleError),
        (Nfsstat3.NFS3ERR_BADHANDLE, NfsBadHandleError),
        (Nfsstat3.NFS3ERR_JUKEBOX, NfsJukeboxError),
    ],
)
def test_statuses_the_backend_acts_on_have_their_own_class(
    status: Nfsstat3, cls: type[NfsError]
) -> None:
    assert type(nfs_error("READ", status)) is cls


def test_status_errors_carry_posix_meaning() -> None:
    assert nfs_error("LOOKUP", Nfsstat3.NFS3ERR_STALE).errno == errno.ESTALE
    assert nfs_error("LOOKUP", Nfsstat3.NFS3ERR_ISDIR).errno == errno.EISDIR
    assert nfs_error("WRITE", Nfsstat3.NFS3ERR_NOSPC).errno == errno.ENOSPC
    assert isinstance(nfs_error("WRITE", Nfsstat3.NFS3ERR_ACCES), PermissionError)
    assert isinstance(nfs_error("CREATE", Nfsstat3.NFS3ERR_EXIST), FileExistsError)
    assert NfsStaleError("READ").status == Nfsstat3.NFS3ERR_STALE


def test_an_undefined_status_still_raises_with_its_number() -> None:
    exc = nfs_error("READ", 4242)
    assert type(exc) is NfsError
    assert "nfsstat3 4242" in str(exc)


@pytest.mark.parametrize("status", [s for s in Mountstat3 if s != Mountstat3.MNT3_OK])
def test_every_mountstat3_is_reported_with_its_name_and_meaning(status: Mountstat3) -> None:
    exc = mount_error("/srv/x", status)
    assert type(exc) is MOUNT_ERRORS.get(status, MountError)
    assert isinstance(exc, MountError)
    assert "/srv/x" in str(exc)
    assert status.name in str(exc)
    assert exc.meaning != "unknown status"


def test_mount_result_and_refusals() -> None:
    assert decode_mnt_res(words(0, 5) + FH + b"\0\0\0" + words(1, 1), "/e") == MountResult(FH, (1,))
    with pytest.raises(MountNoEntError, match="'/nope'"):
        decode_mnt_res(words(2), "/nope")
    with pytest.raises(MountAccesError):
        decode_mnt_res(words(13), "/e")


def test_dirpath_limit() -> None:
    with pytest.raises(ProtocolError):
        encode_dirpath("/" + "x" * 1024)


def test_getport() -> None:
    assert encode_getport_args(100003, 3, IpProto.TCP) == words(100003, 3, 6, 0)
    assert decode_getport_res(words(2049)) == 2049


# ------------------------------------------------------------------ fuzzing

DECODERS: list[Callable[[bytes], object]] = [
    decode_getattr_res,
    decode_setattr_res,
    decode_lookup_res,
    decode_access_res,
    lambda b: decode_read_res(b, 65536),
    decode_write_res,
    decode_create_res,
    decode_remove_res,
    decode_commit_res,
    decode_fsinfo_res,
    decode_fsstat_res,
    lambda b: decode_mnt_res(b, "/e"),
    decode_getport_res,
]


@settings(max_examples=300)
@given(st.sampled_from(DECODERS), st.binary(max_size=200))
def test_fuzzed_results_decode_or_fail_with_a_protocol_or_status_error(
    decode: Callable[[bytes], object], data: bytes
) -> None:
    with contextlib.suppress(XdrDecodeError, NfsError, MountError):
        decode(data)


@settings(max_examples=200)
@given(st.sampled_from(DECODERS), st.integers(0, 2**32 - 1), st.binary(max_size=120))
def test_fuzzed_results_with_a_valid_status_word(
    decode: Callable[[bytes], object], length: int, data: bytes
) -> None:
    # success status followed by a hostile length field: never allocates the claimed size
    with contextlib.suppress(XdrDecodeError, NfsError, MountError):
        decode(words(0, 1) + words(length) + data)


def test_hostile_lengths_allocate_nothing_like_what_they_claim() -> None:
    hostile = [
        words(0, 0) + words(0xFFFFFFFF) + b"x" * 16,  # READ data length 4 GiB
        words(0, 0xFFFFFFFF) + b"x" * 16,  # LOOKUP handle length 4 GiB
        words(0, 0xFFFFFFF0),  # MNT handle length
    ]
    decoders: list[Callable[[bytes], object]] = [
        lambda b: decode_read_res(b, 2**32 - 1),
        decode_lookup_res,
        lambda b: decode_mnt_res(b, "/e"),
    ]
    tracemalloc.start()
    try:
        for data, decode in zip(hostile, decoders, strict=True):
            with pytest.raises(XdrDecodeError):
                decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
