"""The userfaultfd ABI packing matches include/uapi/linux/userfaultfd.h."""

from __future__ import annotations

import errno
import struct

import pytest

from swapio.mapping import _abi, _uffd
from swapio.mapping.errors import UserfaultfdUnavailable


def test_ioctl_numbers_are_the_kernel_headers_values() -> None:
    # values of the _IOWR/_IOR macros as compiled on x86_64 (strace prints these)
    assert _abi.UFFDIO_API == 0xC018AA3F
    assert _abi.UFFDIO_REGISTER == 0xC020AA00
    assert _abi.UFFDIO_UNREGISTER == 0x8010AA01
    assert _abi.UFFDIO_WAKE == 0x8010AA02
    assert _abi.UFFDIO_COPY == 0xC028AA03
    assert _abi.UFFDIO_ZEROPAGE == 0xC020AA04
    assert _abi.UFFDIO_WRITEPROTECT == 0xC018AA06
    assert _abi.USERFAULTFD_IOC_NEW == 0xAA00


def test_struct_sizes_match_the_header() -> None:
    assert _abi.API_STRUCT.size == 24
    assert _abi.REGISTER_STRUCT.size == 32
    assert _abi.COPY_STRUCT.size == 40
    assert _abi.ZEROPAGE_STRUCT.size == 32
    assert _abi.WRITEPROTECT_STRUCT.size == 24
    assert _abi.MSG_SIZE == 32


def test_copy_packs_dst_src_len_mode_in_order() -> None:
    packed = _abi.pack_copy(0x1000, 0x2000, 4096, _abi.CopyMode.WP)
    assert struct.unpack("<QQQQq", packed) == (0x1000, 0x2000, 4096, 2, 0)


def test_pagefault_message_decodes_flags_and_address() -> None:
    raw = struct.pack("<B7xQQI4x", 0x12, 0b11, 0x7F0000001000, 42)
    (msg,) = _abi.decode_messages(raw)
    assert isinstance(msg, _abi.Pagefault)
    assert msg.address == 0x7F0000001000
    assert msg.write
    assert msg.write_protect
    assert msg.ptid == 42


def test_non_pagefault_events_are_reported_as_such() -> None:
    raw = struct.pack("<B7xQQI4x", 0x13, 0, 0, 0)
    assert _abi.decode_messages(raw) == [_abi.OtherEvent(0x13)]


def test_a_partial_message_is_refused() -> None:
    with pytest.raises(ValueError, match="uffd_msg"):
        _abi.decode_messages(bytes(33))


def test_no_userfaultfd_names_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_uffd, "_syscall_userfaultfd", lambda flags: -errno.ENOSYS)
    monkeypatch.setattr(_uffd, "_from_device", lambda flags: -errno.ENOENT)
    with pytest.raises(UserfaultfdUnavailable, match="ENOSYS"):
        _uffd.create()


def test_eperm_names_the_sysctl_and_seccomp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_uffd, "_syscall_userfaultfd", lambda flags: -errno.EPERM)
    monkeypatch.setattr(_uffd, "_from_device", lambda flags: -errno.EACCES)
    with pytest.raises(UserfaultfdUnavailable, match=r"vm\.unprivileged_userfaultfd.*seccomp"):
        _uffd.create()


def test_this_kernel_offers_what_the_mapping_needs() -> None:
    features = _uffd.supported_features()
    assert features & _abi.Feature.MISSING_SHMEM
    assert features & _abi.Feature.WP_HUGETLBFS_SHMEM
