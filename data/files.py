"""Writing files safely: every file is written to a temporary name beside
it, flushed, fsynced and renamed, so a crash or a full disk never leaves a
half-written file where a good one was.

A failed write raises `WriteError`, whose message names the path and the
cause ("No space left on device", "Read-only file system", ...).
"""
import errno
import os


class WriteError(OSError):
    """A file could not be written; the message names the path and why."""

    def __str__(self):
        return self.strerror


def _fsync_directory(directory):
    try:
        fd = os.open(directory or '.', os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile(object):
    """`with AtomicFile(path) as f: f.write(...)` writes `path` atomically.

    With `overwrite=False` an existing `path` is never replaced: committing
    raises WriteError (EEXIST) and the file already there is untouched.
    Leaving the block through an exception discards the temporary file.
    """

    def __init__(self, path, mode='wb', overwrite=True):
        self.path = str(path)
        self.mode, self.overwrite = mode, overwrite
        self.temp = '%s.tmp-%d' % (self.path, os.getpid())
        self.file = None

    def __enter__(self):
        directory = os.path.dirname(self.path)
        try:
            if directory:
                os.makedirs(directory, exist_ok=True)
            self.file = open(self.temp, self.mode)
        except OSError as err:
            raise WriteError(err.errno, 'cannot write %s: %s' % (self.path, err.strerror or err))
        return self.file

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._discard()
            if isinstance(exc, OSError) and not isinstance(exc, WriteError):
                raise WriteError(exc.errno, 'cannot write %s: %s'
                                 % (self.path, exc.strerror or exc)) from exc
            return False
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if self.overwrite:
                os.replace(self.temp, self.path)
            else:
                os.link(self.temp, self.path)      # fails if path exists
                os.remove(self.temp)
        except OSError as err:
            self._discard()
            if err.errno == errno.EEXIST:
                raise WriteError(err.errno, 'not replacing %s, which already exists' % self.path)
            raise WriteError(err.errno, 'cannot write %s: %s' % (self.path, err.strerror or err))
        _fsync_directory(os.path.dirname(self.path))
        return False

    def _discard(self):
        try:
            self.file.close()
        except (OSError, AttributeError):
            pass
        try:
            os.remove(self.temp)
        except OSError:
            pass


def write_atomic(path, data, overwrite=True):
    """Write bytes or text to `path` atomically; returns the path."""
    binary = isinstance(data, (bytes, bytearray, memoryview))
    with AtomicFile(path, 'wb' if binary else 'w', overwrite) as f:
        f.write(data)
    return str(path)
