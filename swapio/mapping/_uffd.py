"""A thin I/O shell over a userfaultfd descriptor: create, negotiate, register, resolve.

The struct packing is :mod:`swapio.mapping._abi`; this module only issues the syscalls and
ioctls (``fcntl.ioctl``) and turns their errno into :class:`UserfaultfdError` with the cause
named (see ``userfaultfd(2)`` and ``ioctl_userfaultfd(2)``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform

from swapio.mapping import _abi
from swapio.mapping.errors import UserfaultfdError, UserfaultfdUnavailable

#: ``__NR_userfaultfd`` per architecture (``arch/*/entry/syscalls``).
_SYSCALL_NR = {"x86_64": 323, "aarch64": 282, "riscv64": 282, "ppc64le": 364, "s390x": 355}
_libc = ctypes.CDLL(None, use_errno=True)


def _syscall_userfaultfd(flags: int) -> int:
    nr = _SYSCALL_NR.get(platform.machine())
    if nr is None:
        return -errno.ENOSYS
    fd = int(_libc.syscall(ctypes.c_long(nr), ctypes.c_int(flags)))
    return fd if fd >= 0 else -ctypes.get_errno()


def _from_device(flags: int) -> int:
    try:
        dev = os.open("/dev/userfaultfd", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return -(exc.errno or errno.ENODEV)
    try:
        return int(fcntl.ioctl(dev, _abi.USERFAULTFD_IOC_NEW, flags))
    except OSError as exc:
        return -(exc.errno or errno.EIO)
    finally:
        os.close(dev)


def _explain(err: int) -> str:
    if err == errno.ENOSYS:
        return (
            "the kernel has no userfaultfd (ENOSYS: built without CONFIG_USERFAULTFD, or an "
            "unsupported architecture)"
        )
    if err == errno.EPERM:
        return (
            "userfaultfd is not permitted (EPERM): sysctl vm.unprivileged_userfaultfd=0 and "
            "this process lacks CAP_SYS_PTRACE and access to /dev/userfaultfd, or a seccomp "
            "filter (e.g. a container runtime's default profile) blocks the syscall"
        )
    if err in (errno.ENOENT, errno.EACCES):
        return f"/dev/userfaultfd is not usable ({errno.errorcode.get(err, err)})"
    return f"userfaultfd failed: {os.strerror(err)}"


def create() -> int:
    """A new non-blocking, close-on-exec userfaultfd (syscall, then ``/dev/userfaultfd``).

    Raises :class:`UserfaultfdUnavailable` naming the cause when neither works.
    """
    flags = os.O_CLOEXEC | os.O_NONBLOCK
    fd = _syscall_userfaultfd(flags)
    if fd == -errno.EPERM:
        # unprivileged users may still handle user-mode faults only (all ours are)
        fd = _syscall_userfaultfd(flags | _abi.UFFD_USER_MODE_ONLY)
    if fd < 0:
        dev = _from_device(flags)
        if dev >= 0:
            return dev
        raise UserfaultfdUnavailable(_explain(-fd))
    return fd


def _ioctl(fd: int, request: int, arg: bytes, what: str) -> bytearray:
    buf = bytearray(arg)
    try:
        fcntl.ioctl(fd, request, buf, True)
    except OSError as exc:
        err = exc.errno or errno.EIO
        raise UserfaultfdError(err, f"{what}: {os.strerror(err)}") from exc
    return buf


def api(fd: int, features: int) -> tuple[int, int]:
    """UFFDIO_API handshake asking for ``features``: returns ``(features, ioctls)`` granted."""
    out = _ioctl(fd, _abi.UFFDIO_API, _abi.pack_api(features), "UFFDIO_API")
    _, got, ioctls = _abi.unpack_api(bytes(out))
    return got, ioctls


def supported_features() -> int:
    """Every feature this kernel offers (probed on a throw-away descriptor: UFFDIO_API may
    run once per descriptor)."""
    fd = create()
    try:
        return api(fd, 0)[0]
    finally:
        os.close(fd)


def register(fd: int, start: int, length: int, mode: int) -> int:
    """UFFDIO_REGISTER ``[start, start + length)``; returns the ioctls the range allows."""
    out = _ioctl(fd, _abi.UFFDIO_REGISTER, _abi.pack_register(start, length, mode), "register")
    return _abi.unpack_register_ioctls(bytes(out))


def copy(fd: int, dst: int, src: int, length: int, mode: int) -> bool:
    """UFFDIO_COPY; False when a page of the range was already present (EEXIST)."""
    try:
        _ioctl(fd, _abi.UFFDIO_COPY, _abi.pack_copy(dst, src, length, mode), "UFFDIO_COPY")
    except UserfaultfdError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    return True


def zeropage(fd: int, start: int, length: int, mode: int) -> bool:
    """UFFDIO_ZEROPAGE; False when the page was already present (EEXIST)."""
    try:
        _ioctl(fd, _abi.UFFDIO_ZEROPAGE, _abi.pack_zeropage(start, length, mode), "ZEROPAGE")
    except UserfaultfdError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    return True


def writeprotect(fd: int, start: int, length: int, mode: int) -> None:
    """UFFDIO_WRITEPROTECT: ``mode`` WP protects the range, 0 un-protects and wakes."""
    _ioctl(fd, _abi.UFFDIO_WRITEPROTECT, _abi.pack_writeprotect(start, length, mode), "WP")


def wake(fd: int, start: int, length: int) -> None:
    """UFFDIO_WAKE the threads faulting in ``[start, start + length)``."""
    _ioctl(fd, _abi.UFFDIO_WAKE, _abi.pack_range(start, length), "UFFDIO_WAKE")
