"""One Linux inotify descriptor for the whole process, with a wake-up pipe.

The kernel calls are made through ``ctypes`` on the C library; when that is not
possible the ``inotifyx`` extension is used for them instead. Events are read
with ``os.read`` and decoded here, so both back ends behave identically.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import select
import struct
import threading
from dataclasses import dataclass
from typing import Callable, Optional

logger = logging.getLogger(__name__)

IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_MASK_ADD = 0x20000000
IN_ISDIR = 0x40000000

_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000

#: Everything a directory watch needs: entries created, written, deleted, moved,
#: and the directory itself going away.
DIRECTORY_MASK = (
    IN_CREATE
    | IN_CLOSE_WRITE
    | IN_MODIFY
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)

_HEADER = struct.Struct("iIII")
_READ_SIZE = 256 * 1024

_FLAG_NAMES = {
    IN_ACCESS: "IN_ACCESS",
    IN_MODIFY: "IN_MODIFY",
    IN_ATTRIB: "IN_ATTRIB",
    IN_CLOSE_WRITE: "IN_CLOSE_WRITE",
    IN_CLOSE_NOWRITE: "IN_CLOSE_NOWRITE",
    IN_OPEN: "IN_OPEN",
    IN_MOVED_FROM: "IN_MOVED_FROM",
    IN_MOVED_TO: "IN_MOVED_TO",
    IN_CREATE: "IN_CREATE",
    IN_DELETE: "IN_DELETE",
    IN_DELETE_SELF: "IN_DELETE_SELF",
    IN_MOVE_SELF: "IN_MOVE_SELF",
    IN_UNMOUNT: "IN_UNMOUNT",
    IN_Q_OVERFLOW: "IN_Q_OVERFLOW",
    IN_IGNORED: "IN_IGNORED",
    IN_ISDIR: "IN_ISDIR",
}


class NotifierError(OSError):
    """inotify cannot be used at all (no kernel support, instance limit)."""


class WatchError(OSError):
    """A watch could not be added; carries the path and the reason."""

    def __init__(self, path: str, err: int, reason: str) -> None:
        super().__init__(err, reason, path)
        self.path = path
        self.reason = reason

    @property
    def limit_reached(self) -> bool:
        """True when the kernel's watch limit (``max_user_watches``) is exhausted."""
        return self.errno in (errno.ENOSPC, errno.ENOMEM)

    @property
    def missing(self) -> bool:
        """True when the path does not exist (any more) or is not a directory."""
        return self.errno in (errno.ENOENT, errno.ENOTDIR)

    def __str__(self) -> str:
        return f"cannot watch {self.path}: {self.reason}"


@dataclass(frozen=True)
class Event:
    """One decoded inotify event; ``path`` is the watched path joined with ``name``."""

    wd: int
    mask: int
    name: str
    path: str
    cookie: int = 0

    @property
    def is_dir(self) -> bool:
        return bool(self.mask & IN_ISDIR)

    @property
    def created(self) -> bool:
        """An entry appeared: created or moved in."""
        return bool(self.mask & (IN_CREATE | IN_MOVED_TO))

    @property
    def deleted(self) -> bool:
        """An entry disappeared: deleted or moved out."""
        return bool(self.mask & (IN_DELETE | IN_MOVED_FROM))

    @property
    def written(self) -> bool:
        """An entry's content changed (closed after writing, or modified)."""
        return bool(self.mask & (IN_CLOSE_WRITE | IN_MODIFY))

    @property
    def watch_gone(self) -> bool:
        """The watched directory itself was deleted, moved away or unwatched."""
        return bool(self.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT))

    @property
    def overflow(self) -> bool:
        """The kernel queue overflowed: events were lost, the caller must re-scan."""
        return bool(self.mask & IN_Q_OVERFLOW)

    def mask_names(self) -> str:
        """Textual mask, e.g. ``IN_CREATE|IN_ISDIR``."""
        return "|".join(text for flag, text in _FLAG_NAMES.items() if self.mask & flag)


class _Backend:
    """The three kernel calls, from libc via ctypes or from inotifyx."""

    def __init__(self) -> None:
        self.name = ""
        self.init: Callable[[], int]
        self.add: Callable[[int, str, int], int]
        self.rm: Callable[[int, int], None]
        if not self._use_libc():
            self._use_inotifyx()

    def _use_libc(self) -> bool:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            init1 = libc.inotify_init1
            add = libc.inotify_add_watch
            rm = libc.inotify_rm_watch
        except (OSError, AttributeError):
            return False
        init1.argtypes, init1.restype = [ctypes.c_int], ctypes.c_int
        add.argtypes, add.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int
        rm.argtypes, rm.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int

        def _check(result: int, what: str) -> int:
            if result < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"{what}: {os.strerror(err)}")
            return result

        def _init() -> int:
            return _check(init1(_IN_NONBLOCK | _IN_CLOEXEC), "inotify_init1")

        def _add(fd: int, path: str, mask: int) -> int:
            return _check(add(fd, os.fsencode(path), mask), "inotify_add_watch")

        def _rm(fd: int, wd: int) -> None:
            _check(rm(fd, wd), "inotify_rm_watch")

        self.name, self.init, self.add, self.rm = "libc", _init, _add, _rm
        return True

    def _use_inotifyx(self) -> None:
        try:
            import inotifyx
        except ImportError:
            raise NotifierError(errno.ENOSYS, "neither libc inotify nor inotifyx") from None

        def _init() -> int:
            fd = inotifyx.init()
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
            return fd

        def _add(fd: int, path: str, mask: int) -> int:
            try:
                return inotifyx.add_watch(fd, path, mask)
            except OSError as exc:
                raise OSError(exc.errno, f"inotify_add_watch: {exc.strerror}") from None

        def _rm(fd: int, wd: int) -> None:
            inotifyx.rm_watch(fd, wd)

        self.name, self.init, self.add, self.rm = "inotifyx", _init, _add, _rm


_backend: Optional[_Backend] = None
_backend_lock = threading.Lock()


def _get_backend() -> _Backend:
    global _backend
    with _backend_lock:
        if _backend is None:
            _backend = _Backend()
        return _backend


def inotify_available() -> bool:
    """True when an inotify instance can be created on this system."""
    try:
        fd = _get_backend().init()
    except OSError:
        return False
    os.close(fd)
    return True


available = inotify_available


class Notifier:
    """One inotify descriptor; watches are shared by path and counted per user.

    ``read`` blocks in ``select`` until events arrive, the timeout passes or
    ``wake`` is called from another thread.
    """

    def __init__(self) -> None:
        try:
            self._fd = _get_backend().init()
        except OSError as exc:
            raise NotifierError(exc.errno or errno.ENOSYS, f"inotify unavailable: {exc}") from None
        self._wake_r, self._wake_w = os.pipe()
        for end in (self._wake_r, self._wake_w):
            os.set_blocking(end, False)
        self._lock = threading.Lock()
        self._paths: dict[int, str] = {}
        self._users: dict[int, int] = {}
        self._closed = False

    def fileno(self) -> int:
        """The inotify descriptor."""
        return self._fd

    @property
    def watch_count(self) -> int:
        """Number of kernel watches currently held."""
        with self._lock:
            return len(self._paths)

    def add_watch(self, path: str, mask: int = DIRECTORY_MASK) -> int:
        """Watch ``path``; returns the kernel watch descriptor.

        Adding an already watched path returns the same descriptor (the masks
        are combined) and counts one more user. Raises :class:`WatchError`.
        """
        if "\0" in path:
            raise WatchError(path, errno.EINVAL, "path contains a NUL byte")
        with self._lock:
            if self._closed:
                raise WatchError(path, errno.EBADF, "notifier is closed")
            try:
                wd = _get_backend().add(self._fd, path, mask | IN_MASK_ADD)
            except OSError as exc:
                code = exc.errno or errno.EIO
                raise WatchError(path, code, os.strerror(code)) from None
            self._paths[wd] = path
            self._users[wd] = self._users.get(wd, 0) + 1
            return wd

    def remove_watch(self, wd: int) -> None:
        """Drop one user of ``wd``; the kernel watch goes with its last user."""
        with self._lock:
            users = self._users.get(wd)
            if users is None:
                return
            if users > 1:
                self._users[wd] = users - 1
                return
            del self._users[wd]
            self._paths.pop(wd, None)
            if self._closed:
                return
            try:
                _get_backend().rm(self._fd, wd)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    logger.debug("inotify_rm_watch %d: %s", wd, exc)

    def path_of(self, wd: int) -> Optional[str]:
        """The path last watched under ``wd``, if the watch is held."""
        with self._lock:
            return self._paths.get(wd)

    def wake(self) -> None:
        """Interrupt a blocking :meth:`read` (safe from any thread)."""
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self._wake_w, b"w")
            except OSError:
                pass

    def read(self, timeout: Optional[float]) -> list[Event]:
        """Wait up to ``timeout`` s (``None``: forever) and return the pending events.

        Returns an empty list on timeout or wake-up.
        """
        if self._closed:
            return []
        if timeout is not None:
            timeout = max(0.0, timeout)
        try:
            ready, _, _ = select.select([self._fd, self._wake_r], [], [], timeout)
        except (OSError, ValueError):
            return []
        if self._wake_r in ready:
            self._drain_wake()
        if self._fd not in ready:
            return []
        return self._read_pending()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _read_pending(self) -> list[Event]:
        events: list[Event] = []
        while True:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                logger.warning("Reading inotify events failed: %s", exc)
                break
            if not data:
                break
            events.extend(self._decode(data))
            if len(data) < _READ_SIZE // 2:
                break
        return events

    def _decode(self, data: bytes) -> list[Event]:
        events = []
        offset = 0
        with self._lock:
            while offset + _HEADER.size <= len(data):
                wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                raw = data[offset:offset + length].split(b"\0", 1)[0]
                offset += length
                name = os.fsdecode(raw)
                base = self._paths.get(wd, "")
                path = os.path.join(base, name) if (base and name) else base
                if mask & IN_IGNORED:
                    self._paths.pop(wd, None)
                    self._users.pop(wd, None)
                events.append(Event(wd=wd, mask=mask, name=name, path=path, cookie=cookie))
        return events

    def close(self) -> None:
        """Close the descriptor (the kernel drops every watch) and the wake-up pipe."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._paths.clear()
            self._users.clear()
        for fd in (self._fd, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
