"""A simulated NOR flash chip over an image file, with wear and power-loss injection.

The image file holds the chip's contents byte for byte (a JFFS2 image real tools can read).
The chip's own state — geometry, per-block erase counts, bad-block marks and byte counters
— lives in a **sidecar** file ``IMAGE.flash`` (layout in ``docs/flashlog.md``), because it
is not part of the flash contents any more than wear is.

NOR rules are enforced, as littlefs's ``lfs_emubd`` asserts them:

* a program may only clear bits (a 1 where the flash holds 0 is an error);
* a write unit (``write_unit`` bytes) may be programmed once between erases;
* a program may not cross an erase-block boundary; programs are whole units;
* bad blocks may not be programmed or erased.

Fault injection: :meth:`FlashDevice.arm_power_cut` cuts power during the N-th program or
erase from now, leaving that operation part-way done (a random prefix of a program, plus
optionally a byte with only some of its bits cleared; a random prefix of an erase), then
raises :class:`~swapio_flashlog.errors.PowerLoss` and refuses every later operation.
:meth:`FlashDevice.flip_bit` models a retention error.

One owner at a time: an open device holds an exclusive ``flock`` on the image for as long
as it is open (like a mounted MTD device), so a second process — or a second open in this
one — is refused with :class:`~swapio_flashlog.errors.ImageBusyError` instead of two logs
appending over each other.  A power cut releases the lock with the dead chip.

The image may be a regular file or a block device (a loop device, ``mtdblock``): a block
device is sized with ``lseek(SEEK_END)``, since its ``st_size`` is 0.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import mmap
import os
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swapio.errors import (
    AreaExistsError,
    AreaNotFoundError,
    BackendIOError,
    SwapioError,
    UsageError,
)
from swapio_flashlog._image import (
    MIN_BLOCKS,
    SIDECAR_SUFFIX,
    check_free_space,
    fd_size,
    format_name,
    image_size,
    lock_image,
    move_new,
    open_image,
    pad_hint,
    remove_image,
    sidecar_path,
    sweep_stale_formats,
    write_new_file,
)
from swapio_flashlog._units import ProgrammedUnits
from swapio_flashlog.errors import (
    BadBlockError,
    FlashProgramError,
    GeometryError,
    ImageFormatError,
    PowerLoss,
)

__all__ = [
    "MIN_BLOCKS",
    "SIDECAR_SUFFIX",
    "Detector",
    "FlashDevice",
    "Geometry",
    "PowerLossMode",
    "check_free_space",
    "image_geometry",
    "image_size",
    "open_image",
    "remove_image",
    "sidecar_path",
]

SIDECAR_MAGIC = b"SWIOFLSH"
SIDECAR_VERSION = 1
#: magic, version, erase_block, write_unit, size, blocks, flags, programmed, erased, host
_SIDE_HDR = struct.Struct("<8sIIIQIIQQQ")
_FLAG_BAD = 1
#: Buffers per ``pwritev`` (Linux ``UIO_MAXIOV``).
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 1024
ERASED = 0xFF
_COUNTERS_AT = struct.calcsize("<8sIIIQII")  # programmed, erased, host: three u64 from here
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class Geometry:
    """Size, erase-block size and minimum write unit of a flash chip, in bytes."""

    size: int
    erase_block: int = 64 * 1024
    write_unit: int = 4

    def __post_init__(self) -> None:
        eb, wu = self.erase_block, self.write_unit
        if wu < 1 or wu & (wu - 1) or wu > 4096:
            raise GeometryError(f"write unit {wu} is not a power of two in 1..4096")
        if eb < 4096 or eb & (eb - 1) or eb % wu:
            raise GeometryError(
                f"erase block {eb} is not a power of two >= 4096 (and a multiple of the write unit)"
            )
        if self.size <= 0 or self.size % eb:
            raise GeometryError(
                f"flash size {self.size} is not a positive multiple of the erase block {eb}"
            )
        if self.size // eb < MIN_BLOCKS:
            raise GeometryError(
                f"flash of {self.size // eb} erase blocks; JFFS2 needs at least {MIN_BLOCKS}"
            )

    @property
    def blocks(self) -> int:
        return self.size // self.erase_block


#: Finds an image's erase-block size from its bytes: ``detect(read(offset, n), size)``.
Detector = Callable[[Callable[[int, int], bytes], int], "int | None"]


def _read_at(fd: int, offset: int, length: int) -> bytes:
    return os.pread(fd, length, offset)


class PowerLossMode(enum.Enum):
    """What a cut operation leaves behind (``lfs_emubd`` ``powerloss_behavior``)."""

    NOOP = "noop"  # the cut operation did nothing
    PREFIX = "prefix"  # a random number of leading bytes made it
    SOMEBITS = "somebits"  # a prefix, then one byte with only some of its bits programmed


def image_geometry(path: str, size: int, erase_block: int, write_unit: int = 4) -> Geometry:
    """The geometry of an image of ``size`` bytes (its own size, not the caller's word): an
    impossible one is the image's fault (exit 3, as with a sidecar), and says how to pad it."""
    try:
        return Geometry(size, erase_block, write_unit)
    except GeometryError as exc:
        raise ImageFormatError(f"{path}: {exc}{pad_hint(path, size, erase_block)}") from None


class FlashDevice:
    """An open flash image.  Not thread-safe: one owner (the log's worker thread) uses it."""

    def __init__(
        self,
        path: str,
        fd: int,
        geometry: Geometry,
        side: bytearray | mmap.mmap,
        side_fd: int | None,
        readonly: bool,
    ) -> None:
        self.path = path
        #: Set while a new image still has its temporary name (see :meth:`publish`).
        self.final_path: str | None = None
        self.geometry = geometry
        self.readonly = readonly
        self._fd = fd
        self._side = side
        self._side_fd = side_fd
        # Units programmed this session; after a re-open a unit counts as programmed when
        # it does not read as erased (programming 0xFF changes nothing physically).
        self._programmed = ProgrammedUnits(geometry.blocks)
        #: Blocks erased (or formatted) by this process: 0xFF except where ``_programmed``.
        self._erased_here = bytearray(geometry.blocks)
        self._blank = b"\xff" * geometry.erase_block
        self._blank_view = memoryview(self._blank)
        self.ops = 0
        #: Erase counts mirrored from the sidecar, with their min (and how many blocks are
        #: at it), max and sum kept as blocks are erased (read per GC step).
        self._counts: list[int] | None = None
        self._count_min = self._count_max = self._count_sum = self._at_min = 0
        self._cut_at: int | None = None
        self._cut_mode = PowerLossMode.PREFIX
        self._rng = random.Random(0)
        self.dead = False
        #: When set, every read, program and erase fails with this message (a dead chip).
        self.io_error: str | None = None
        #: Bytes read since the device was opened (what a mount costs in flash reads).
        self.bytes_read = 0

    # --- construction ---------------------------------------------------------------

    @classmethod
    def format(
        cls,
        path: str,
        geometry: Geometry,
        bad_blocks: tuple[int, ...] = (),
        *,
        publish: bool = True,
    ) -> FlashDevice:
        """Create a new, fully erased image and its sidecar; never touches existing files.

        Either both files are made and the device is returned open (and locked), or
        neither is left behind: too little free space is refused before anything is
        written (:class:`~swapio.errors.AreaError`), a failed write is a
        :class:`BackendIOError`.  The image is written under a temporary name; with
        ``publish=False`` it keeps it until :meth:`publish` (the caller finishes the
        image first).
        """
        for block in bad_blocks:
            if not 0 <= block < geometry.blocks:
                raise GeometryError(f"bad block {block} outside 0..{geometry.blocks - 1}")
        spath = sidecar_path(path)
        if "\0" in path:
            raise UsageError(f"{path!r}: an image path cannot contain a NUL byte")
        if os.path.lexists(spath):
            raise AreaExistsError(
                f"{spath}: a sidecar already exists; refusing to format over it "
                "(remove it if its image is gone)"
            )
        if os.path.lexists(path):
            raise AreaExistsError(f"{path}: already exists; refusing to format over it")
        check_free_space(path, geometry.size + _SIDE_HDR.size + 5 * geometry.blocks)
        side = bytes(_new_sidecar(geometry, bad_blocks))
        # Written under a temporary name and published by publish(): a format killed
        # half-way leaves no image under the name asked for (the next format sweeps it).
        sweep_stale_formats(path)
        tmp = format_name(path, os.getpid())
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise AreaNotFoundError(f"{path}: parent directory does not exist") from None
        except OSError as exc:
            raise BackendIOError(f"{path}: cannot create: {exc.strerror or exc}") from exc
        made_side = False
        try:
            lock_image(path, fd)
            chunk = b"\xff" * (1 << 20)
            done = 0
            while done < geometry.size:
                done += os.pwrite(fd, chunk[: min(len(chunk), geometry.size - done)], done)
            write_new_file(sidecar_path(tmp), side)
            made_side = True
            device = cls._attach(tmp, fd, geometry, readonly=False)
            device._erased_here[:] = b"\x01" * geometry.blocks  # written as 0xFF just now
            device.final_path = path
            if publish:
                device.publish()
            return device
        except BaseException as exc:
            os.close(fd)
            for victim in (tmp, sidecar_path(tmp)) if made_side else (tmp,):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(victim)
            if isinstance(exc, OSError) and not isinstance(exc, SwapioError):
                raise BackendIOError(
                    f"{path}: cannot format a {geometry.size}-byte flash image: "
                    f"{exc.strerror or exc}; nothing was left behind",
                    detail=exc,
                ) from exc
            raise

    def publish(self) -> None:
        """Give a freshly formatted image (and its sidecar) the name it was asked for; never
        over an existing file.  Nothing to do for an image opened by its name."""
        final = self.final_path
        if final is None:
            return
        tmp = self.path
        try:
            move_new(tmp, final)
        except FileExistsError:
            raise AreaExistsError(
                f"{final}: appeared while the image was being formatted; not replacing it"
            ) from None
        self.path = final
        try:
            move_new(sidecar_path(tmp), sidecar_path(final))
        except FileExistsError:
            self.path = tmp
            os.rename(final, tmp)  # ours: take it back under the temporary name
            raise AreaExistsError(
                f"{sidecar_path(final)}: appeared while the image was being formatted; "
                "not replacing it"
            ) from None
        self.path = final
        self.final_path = None

    @classmethod
    def open(
        cls,
        path: str,
        geometry: Geometry | None = None,
        *,
        readonly: bool = False,
        detect: Detector | None = None,
    ) -> FlashDevice:
        """Open an image.  Without a sidecar (a foreign image, e.g. from ``mkfs.jffs2``) the
        geometry is ``geometry``, else the erase block ``detect`` finds in the image's
        bytes, else the default; a sidecar that disagrees with ``geometry`` is an error."""
        fd = open_image(path, readonly=readonly)
        try:
            return cls._attach(path, fd, geometry, readonly=readonly, detect=detect)
        except BaseException as exc:
            os.close(fd)
            if isinstance(exc, OSError) and not isinstance(exc, SwapioError):
                raise BackendIOError(
                    f"{path}: cannot open: {exc.strerror or exc}", detail=exc
                ) from exc
            raise

    @classmethod
    def _attach(
        cls,
        path: str,
        fd: int,
        geometry: Geometry | None,
        *,
        readonly: bool,
        detect: Detector | None = None,
    ) -> FlashDevice:
        """Lock ``fd``, check it against its sidecar and ``geometry``, map it.  The caller
        closes ``fd`` when this raises."""
        lock_image(path, fd)
        size = fd_size(path, fd)
        spath = sidecar_path(path)
        side_fd: int | None = None
        side: bytearray | mmap.mmap
        if os.path.exists(spath):
            with open(spath, "rb") as f:
                raw = f.read()
            stored = _parse_sidecar(spath, raw)
            if geometry is not None and geometry != stored:
                raise ImageFormatError(
                    f"{path}: its sidecar says {_describe(stored)}, asked for {_describe(geometry)}"
                )
            geometry = stored
            if readonly:
                side = bytearray(raw)
            else:
                side_fd = os.open(spath, os.O_RDWR | os.O_CLOEXEC)
                try:
                    side = mmap.mmap(side_fd, len(raw))
                except BaseException:
                    os.close(side_fd)
                    raise
        else:
            if geometry is None:
                found = None if detect is None else detect(lambda at, n: _read_at(fd, at, n), size)
                if found is None and size % Geometry.erase_block:
                    raise ImageFormatError(
                        f"{path}: a {size}-byte image without a sidecar: no cleanmarker or "
                        "summary node gives its erase-block size away, and it is not a whole "
                        "number of the default 65536-byte blocks; give its erase block"
                    )
                geometry = image_geometry(path, size, found or Geometry.erase_block)
            # a foreign image: chip state starts fresh, written by commit_sidecar()
            # once the image has mounted, so a refused image gains no file
            side = _new_sidecar(geometry, ())
        try:
            if size != geometry.size:
                raise ImageFormatError(
                    f"{path}: image is {size} bytes, geometry says {geometry.size} "
                    f"({_describe(geometry)}); truncated or wrong --size?"
                    + pad_hint(path, size, geometry.erase_block)
                )
            return cls(path, fd, geometry, side, side_fd, readonly)
        except BaseException:
            if isinstance(side, mmap.mmap):
                side.close()
            if side_fd is not None:
                os.close(side_fd)
            raise

    def close(self) -> None:
        """Flush and release the image; idempotent."""
        if self._fd < 0:
            return
        if not self.readonly and not self.dead:
            self._sync()
        if isinstance(self._side, mmap.mmap):
            self._side.flush()
            self._side.close()
        if self._side_fd is not None:
            os.close(self._side_fd)
        os.close(self._fd)
        self._fd = -1

    def commit_sidecar(self) -> None:
        """Persist the chip state of an image that had no sidecar yet."""
        if self.readonly or isinstance(self._side, mmap.mmap):
            return
        spath = sidecar_path(self.path)
        try:
            write_new_file(spath, bytes(self._side))
            self._side_fd = os.open(spath, os.O_RDWR | os.O_CLOEXEC)
            self._side = mmap.mmap(self._side_fd, len(self._side))
        except OSError as exc:
            if isinstance(exc, SwapioError):
                raise
            raise BackendIOError(
                f"{spath}: cannot write the sidecar: {exc.strerror or exc}", detail=exc
            ) from exc

    def flush(self) -> None:
        """``fdatasync`` the image: completed programs survive an OS crash too."""
        if not self.readonly and not self.dead:
            self._sync()

    # --- reading ------------------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` (reads are allowed anywhere, even bad blocks)."""
        self._alive()
        if offset < 0 or length < 0 or offset + length > self.geometry.size:
            raise BackendIOError(f"{self.path}: read {offset}+{length} beyond the flash end")
        self.bytes_read += length
        return self._pread(offset, length)

    # --- state in the sidecar -------------------------------------------------------------

    def erase_count(self, block: int) -> int:
        if self._counts is not None:
            return self._counts[block]
        (count,) = struct.unpack_from("<I", self._side, _SIDE_HDR.size + 4 * block)
        return int(count)

    def erase_counts(self) -> list[int]:
        return list(self.wear()[0])

    def wear(self) -> tuple[Sequence[int], int, int, int]:
        """Erase counts of all blocks (a live view: do not modify) and their min, max and
        sum, without a pass over the chip (they are kept up to date by :meth:`erase`)."""
        counts = self._counts
        if counts is None:
            n = self.geometry.blocks
            counts = self._counts = list(struct.unpack_from(f"<{n}I", self._side, _SIDE_HDR.size))
            self._count_min = min(counts, default=0)
            self._at_min = counts.count(self._count_min)
            self._count_max = max(counts, default=0)
            self._count_sum = sum(counts)
        return counts, self._count_min, self._count_max, self._count_sum

    def _count_erase(self, block: int) -> int:
        """One more erase of ``block`` in the mirror; its new count."""
        counts = self.wear()[0]
        assert isinstance(counts, list)
        old: int = counts[block]
        counts[block] = old + 1
        self._count_sum += 1
        self._count_max = max(self._count_max, old + 1)
        if old == self._count_min:
            self._at_min -= 1
            if self._at_min == 0:  # every block at the old minimum has been erased since
                self._count_min = min(counts)
                self._at_min = counts.count(self._count_min)
        return old + 1

    def is_bad(self, block: int) -> bool:
        return bool(self._side[self._flags_at + block] & _FLAG_BAD)

    def bad_blocks(self) -> list[int]:
        """Indices of the blocks marked bad (usually none: checked with one scan)."""
        at = self._flags_at
        flags = bytes(self._side[at : at + self.geometry.blocks])
        if flags.count(0) == len(flags):
            return []
        return [i for i, f in enumerate(flags) if f & _FLAG_BAD]

    def mark_bad(self, block: int) -> None:
        """Retire ``block`` (``mtd_block_markbad``)."""
        self._side[self._flags_at + block] |= _FLAG_BAD

    @property
    def programmed_bytes(self) -> int:
        """Bytes programmed over the chip's life (the flash side of write amplification)."""
        return int(_SIDE_HDR.unpack_from(self._side)[7])

    @property
    def host_bytes(self) -> int:
        """Bytes the host asked to store over the chip's life (counted by the log)."""
        return int(_SIDE_HDR.unpack_from(self._side)[9])

    def add_host_bytes(self, nbytes: int) -> None:
        self._add_counter(9, nbytes)

    @property
    def _flags_at(self) -> int:
        return _SIDE_HDR.size + 4 * self.geometry.blocks

    def _add_counter(self, index: int, delta: int) -> None:
        if self.readonly:
            return
        offset = _COUNTERS_AT + 8 * (index - 7)
        (value,) = _U64.unpack_from(self._side, offset)
        _U64.pack_into(self._side, offset, value + delta)

    # --- programming ----------------------------------------------------------------------

    def program(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Program ``data`` at ``offset`` under the NOR rules (see the module docstring)."""
        self.program_parts(offset, (data,))

    def program_parts(self, offset: int, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """Program the concatenation of ``parts`` (byte buffers) at ``offset``: one program,
        as ``mtd_writev`` (the kernel's ``jffs2_flash_writev``), written with one
        ``pwritev`` and no copy; the NOR rules and power cuts as for :meth:`program`."""
        self._alive()
        g = self.geometry
        n = sum(map(len, parts))
        wu = g.write_unit
        if self.readonly:
            raise FlashProgramError(f"{self.path}: opened read-only")
        if n == 0:
            return
        if offset % wu or n % wu or offset < 0 or offset + n > g.size:
            raise FlashProgramError(
                f"program of {n} bytes at 0x{offset:x}: not whole {wu}-byte write units "
                "inside the flash"
            )
        block = offset // g.erase_block
        if (offset + n - 1) // g.erase_block != block:
            raise FlashProgramError(
                f"program of {n} bytes at 0x{offset:x} crosses the erase-block boundary at "
                f"0x{(block + 1) * g.erase_block:x}"
            )
        if self.is_bad(block):
            raise BadBlockError(f"{self.path}: erase block {block} is bad; not programming it")
        base = block * g.erase_block
        first, last = (offset - base) // wu, (offset - base + n) // wu  # units in the block
        used = self._programmed.first_used(block, first, last)
        if used != -1:
            used += base // wu
        # a block erased by this process is erased wherever no program went since: only a
        # block that came erased from disk is read to check it
        if used != -1 or (
            not self._erased_here[block] and self._pread(offset, n) != self._blank_view[:n]
        ):
            old = self._pread(offset, n)
            data = b"".join(parts)
            # erased units accept anything; otherwise say which rule the program breaks
            if int.from_bytes(data, "little") & ~int.from_bytes(old, "little"):
                raise FlashProgramError(
                    f"program at 0x{offset:x} would set bits from 0 to 1 (NOR can only clear bits)"
                )
            if used == -1:
                used = (offset + next(i for i in range(n) if old[i] != ERASED)) // wu
            raise FlashProgramError(
                f"program at 0x{offset:x}: write unit at 0x{used * wu:x} was already programmed "
                "since its block was last erased"
            )
        if self._tick():
            self._cut_program(offset, b"".join(parts))
        self._pwritev(offset, parts)
        self._programmed.mark(block, first, last)
        self._add_counter(7, n)

    def erase(self, block: int, marker: bytes = b"") -> None:
        """Erase ``block`` to 0xFF and count the cycle; then program ``marker`` (whole write
        units: a cleanmarker) at the block start, a second operation as for power cuts.

        Unless a power cut is armed for one of the two, both reach the image with one write.
        """
        self._alive()
        g = self.geometry
        if self.readonly:
            raise FlashProgramError(f"{self.path}: opened read-only")
        if not 0 <= block < g.blocks:
            raise FlashProgramError(f"erase of block {block}: outside 0..{g.blocks - 1}")
        if self.is_bad(block):
            raise BadBlockError(f"{self.path}: erase block {block} is bad; not erasing it")
        at = _SIDE_HDR.size + 4 * block
        struct.pack_into("<I", self._side, at, self._count_erase(block))
        self._add_counter(8, 1)
        start = block * g.erase_block
        if self._tick():
            keep = (
                self._rng.randrange(g.erase_block)
                if self._cut_mode is not PowerLossMode.NOOP
                else 0
            )
            self._pwrite(start, b"\xff" * keep)
            self._die()
        wu = g.write_unit
        n = len(marker)
        if not n or self._cut_at == self.ops + 1 or n % wu or self.io_error is not None:
            self._pwrite(start, self._blank)
            self._programmed.erase(block)
            self._erased_here[block] = 1
            if n:
                self.program(start, marker)
            return
        self.ops += 1  # the marker's program, which no power cut hits
        self._pwritev(start, (marker, self._blank_view[n:]))
        self._programmed.erase(block, n // wu)
        self._erased_here[block] = 1
        self._add_counter(7, n)

    # --- fault injection --------------------------------------------------------------------

    def arm_power_cut(
        self, after: int, mode: PowerLossMode = PowerLossMode.PREFIX, seed: int = 0
    ) -> None:
        """Cut power during the ``after``-th program/erase from now (1 = the next one)."""
        if after < 1:
            raise ValueError("after must be >= 1")
        self._cut_at = self.ops + after
        self._cut_mode = mode
        self._rng = random.Random(seed)

    def disarm(self) -> None:
        self._cut_at = None

    def flip_bit(self, offset: int, bit: int) -> None:
        """Invert one stored bit (a retention error); ignores every NOR rule."""
        self._pwrite(offset, bytes([self._pread(offset, 1)[0] ^ 1 << bit]))
        self._erased_here[offset // self.geometry.erase_block] = 0

    # --- internals ------------------------------------------------------------------------

    def _pread(self, offset: int, length: int) -> bytes:
        """The image's bytes (``pread``: no page faults on a first touch, unlike a mapping,
        which costs several times a copy on a large image)."""
        try:
            data = os.pread(self._fd, length, offset)
        except OSError as exc:
            raise BackendIOError(f"{self.path}: read failed: {exc.strerror or exc}") from exc
        if len(data) != length:
            raise BackendIOError(f"{self.path}: short read at 0x{offset:x} (image truncated?)")
        return data

    def _pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        try:
            while view:
                done = os.pwrite(self._fd, view, offset)
                view = view[done:]
                offset += done
        except OSError as exc:
            raise BackendIOError(f"{self.path}: write failed: {exc.strerror or exc}") from exc

    def _pwritev(self, offset: int, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """``pwritev`` of ``parts`` (in slices of at most ``IOV_MAX``), short writes resumed."""
        if len(parts) == 1:
            self._pwrite(offset, parts[0])
            return
        for at in range(0, len(parts), _IOV_MAX):
            chunk = parts[at : at + _IOV_MAX]
            total = sum(map(len, chunk))
            try:
                done = os.pwritev(self._fd, chunk, offset)
            except OSError as exc:
                raise BackendIOError(f"{self.path}: write failed: {exc.strerror or exc}") from exc
            if done != total:  # short write: the rest as one buffer
                self._pwrite(offset + done, b"".join(chunk)[done:])
            offset += total

    def _sync(self) -> None:
        """Completed programs reach the disk (``fdatasync``; ``fsync`` where it is absent)."""
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise BackendIOError(f"{self.path}: sync failed: {exc.strerror or exc}") from exc

    def _alive(self) -> None:
        if self.dead:
            raise PowerLoss(f"{self.path}: power was cut; re-open the image")
        if self.io_error is not None:
            raise BackendIOError(f"{self.path}: {self.io_error}")

    def _tick(self) -> bool:
        self.ops += 1
        return self._cut_at is not None and self.ops == self._cut_at

    def _cut_program(self, offset: int, data: bytes) -> None:
        if self._cut_mode is not PowerLossMode.NOOP:
            keep = self._rng.randrange(len(data))
            self._pwrite(offset, data[:keep])
            if self._cut_mode is PowerLossMode.SOMEBITS:
                old = self._pread(offset + keep, 1)[0]
                target = data[keep]
                clear = (old & ~target) & self._rng.randrange(256)
                self._pwrite(offset + keep, bytes([old & ~clear]))
        self._die()

    def _die(self) -> None:
        self.dead = True
        # the chip is gone with its owner: whoever re-opens the image may take it now
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._cut_at = None
        raise PowerLoss(f"{self.path}: power cut during operation {self.ops}")


def _describe(g: Geometry) -> str:
    return f"size {g.size}, erase block {g.erase_block}, write unit {g.write_unit}"


def _new_sidecar(geometry: Geometry, bad_blocks: tuple[int, ...]) -> bytearray:
    n = geometry.blocks
    side = bytearray(_SIDE_HDR.size + 5 * n)
    _SIDE_HDR.pack_into(
        side,
        0,
        SIDECAR_MAGIC,
        SIDECAR_VERSION,
        geometry.erase_block,
        geometry.write_unit,
        geometry.size,
        n,
        0,
        0,
        0,
        0,
    )
    for block in bad_blocks:
        side[_SIDE_HDR.size + 4 * n + block] |= _FLAG_BAD
    return side


def _parse_sidecar(path: str, raw: bytes) -> Geometry:
    if len(raw) < _SIDE_HDR.size:
        raise ImageFormatError(f"{path}: sidecar of {len(raw)} bytes is truncated")
    magic, version, eb, wu, size, blocks, *_ = _SIDE_HDR.unpack_from(raw)
    if magic != SIDECAR_MAGIC or version != SIDECAR_VERSION:
        raise ImageFormatError(f"{path}: not a swapio flash sidecar (magic {magic!r})")
    try:
        geometry = Geometry(size, eb, wu)
    except GeometryError as exc:  # a damaged sidecar, not a bad request
        raise ImageFormatError(f"{path}: sidecar holds an impossible geometry: {exc}") from None
    if blocks != geometry.blocks or len(raw) != _SIDE_HDR.size + 5 * blocks:
        raise ImageFormatError(f"{path}: sidecar block table does not match its geometry")
    return geometry
