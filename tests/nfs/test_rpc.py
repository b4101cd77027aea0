"""ONC RPC v2 messages (RFC 5531 §9, Appendix A): calls, AUTH_SYS, every reply status."""

from __future__ import annotations

import errno
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from swapio_nfs._errors import (
    AuthStat,
    GarbageArgsError,
    MalformedReplyError,
    ProcUnavailError,
    ProgMismatchError,
    ProgUnavailError,
    RpcAuthError,
    RpcSystemError,
    RpcVersionMismatchError,
    XdrEncodeError,
)
from swapio_nfs._rpc import (
    AUTH_NONE,
    AcceptStat,
    AuthFlavor,
    AuthSys,
    CallTemplate,
    RejectStat,
    decode_call,
    decode_reply,
    encode_accepted_reply,
    encode_call,
    encode_denied_reply,
    peek_xid,
)

from swapio.errors import BackendIOError, LocalProtocolError, RemoteProtocolError


def words(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def test_null_call_with_auth_none_matches_rfc_layout() -> None:
    msg = encode_call(1, 100003, 3, 0)
    # xid, CALL, rpcvers 2, prog, vers, proc, cred (flavor, len), verf (flavor, len)
    assert msg == words(1, 0, 2, 100003, 3, 0, 0, 0, 0, 0)


def test_auth_sys_credential_layout() -> None:
    cred = AuthSys(machinename="h", uid=1000, gid=100, gids=(100, 4), stamp=7).credential()
    assert cred.flavor == AuthFlavor.AUTH_SYS
    assert cred.body == words(7, 1) + b"h\0\0\0" + words(1000, 100, 2, 100, 4)
    assert AuthSys.decode(cred.body) == AuthSys("h", 1000, 100, (100, 4), 7)


def test_auth_sys_limits_are_enforced() -> None:
    with pytest.raises(XdrEncodeError, match="at most 16 groups"):
        AuthSys(gids=tuple(range(17)))
    with pytest.raises(XdrEncodeError, match="at most 255"):
        AuthSys(machinename="x" * 256)


def test_call_round_trips_through_the_server_side_decoder() -> None:
    cred = AuthSys(uid=5).credential()
    call = decode_call(encode_call(9, 100005, 3, 1, b"\0\0\0\0", cred=cred))
    assert (call.xid, call.prog, call.vers, call.proc) == (9, 100005, 3, 1)
    assert call.cred == cred
    assert call.verf == AUTH_NONE
    assert bytes(call.args) == b"\0\0\0\0"


def test_call_template_patches_only_the_xid() -> None:
    cred = AuthSys(uid=3).credential()
    template = CallTemplate(100003, 3, 6, cred)
    assert template.header(0xDEADBEEF) == encode_call(0xDEADBEEF, 100003, 3, 6, cred=cred)


def test_success_reply_exposes_the_results() -> None:
    reply = decode_reply(encode_accepted_reply(42, b"\0\0\0\7"))
    assert reply.xid == 42
    assert reply.error is None
    assert bytes(reply.results) == b"\0\0\0\7"


@pytest.mark.parametrize(
    ("accept", "extra", "cls"),
    [
        (AcceptStat.PROG_UNAVAIL, b"", ProgUnavailError),
        (AcceptStat.PROG_MISMATCH, words(2, 4), ProgMismatchError),
        (AcceptStat.PROC_UNAVAIL, b"", ProcUnavailError),
        (AcceptStat.GARBAGE_ARGS, b"", GarbageArgsError),
        (AcceptStat.SYSTEM_ERR, b"", RpcSystemError),
    ],
)
def test_every_accept_status_has_its_exception(
    accept: AcceptStat, extra: bytes, cls: type[Exception]
) -> None:
    reply = decode_reply(encode_accepted_reply(3, extra, accept))
    assert type(reply.error) is cls
    assert isinstance(reply.error, BackendIOError)
    assert accept.name in str(reply.error)


def test_prog_mismatch_carries_the_supported_range() -> None:
    reply = decode_reply(encode_accepted_reply(3, words(2, 4), AcceptStat.PROG_MISMATCH))
    assert isinstance(reply.error, ProgMismatchError)
    assert (reply.error.low, reply.error.high) == (2, 4)
    assert "2..4" in str(reply.error)


def test_garbage_args_is_our_fault() -> None:
    reply = decode_reply(encode_accepted_reply(3, b"", AcceptStat.GARBAGE_ARGS))
    assert isinstance(reply.error, LocalProtocolError)


def test_rpc_mismatch_rejection() -> None:
    reply = decode_reply(encode_denied_reply(8, RejectStat.RPC_MISMATCH, 3, 5))
    assert isinstance(reply.error, RpcVersionMismatchError)
    assert (reply.error.low, reply.error.high) == (3, 5)


@pytest.mark.parametrize("stat", list(AuthStat)[1:])
def test_every_auth_stat_is_an_auth_error_naming_it(stat: AuthStat) -> None:
    reply = decode_reply(encode_denied_reply(8, RejectStat.AUTH_ERROR, stat))
    assert isinstance(reply.error, RpcAuthError)
    assert isinstance(reply.error, PermissionError)
    assert reply.error.auth_stat == stat
    assert reply.error.errno == errno.EACCES
    assert stat.name in str(reply.error)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (words(1, 0), "expected msg_type REPLY"),
        (words(1, 1, 2), "unknown reply_stat 2"),
        (words(1, 1, 0, 0, 0, 9), "unknown accept_stat 9"),
        (words(1, 1, 1, 7), "unknown reject_stat 7"),
        (words(1, 1, 0, 0, 500) + b"x" * 500, "at most 400"),
        (words(1, 1), "truncated"),
    ],
)
def test_malformed_replies_raise_with_the_xid(data: bytes, message: str) -> None:
    with pytest.raises(MalformedReplyError, match=message) as info:
        decode_reply(data)
    assert info.value.xid == 1
    assert isinstance(info.value, RemoteProtocolError)


def test_a_message_shorter_than_an_xid_is_malformed() -> None:
    with pytest.raises(MalformedReplyError, match="no XID"):
        peek_xid(b"\0\0")


@given(st.binary(max_size=120))
def test_fuzzed_replies_decode_or_fail_cleanly(data: bytes) -> None:
    try:
        reply = decode_reply(data)
    except MalformedReplyError:
        return
    assert reply.xid == peek_xid(data)
    assert len(reply.results) <= len(data)


@given(st.integers(0, 2**32 - 1), st.binary(max_size=64))
def test_fuzzed_tails_after_a_valid_header(xid: int, tail: bytes) -> None:
    data = words(xid, 1) + tail
    xid_seen = xid
    try:
        decode_reply(data)
    except MalformedReplyError as exc:
        xid_seen = exc.xid if exc.xid is not None else -1
    assert xid_seen == xid
