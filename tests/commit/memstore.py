"""An object store in a dict, like gs://, seen through both of kdaug's I/O layers: Beam's
`FileSystems` (the pipeline's workers write shards through it) and a pyarrow filesystem (the commit
protocol and every reader). No directories: a "directory" is a name prefix, `exists` is true for
objects only, a rename is a copy and a delete, and nothing is a symbolic link.

`use(monkeypatch)` routes ``memfs://`` URIs of `kdaug.commit` to it and returns the dict.
"""

from __future__ import annotations

import io
import posixpath

import pyarrow as pa
import pyarrow.fs as pafs
from apache_beam.io.filesystem import FileMetadata, FileSystem

OBJECTS: dict[str, bytes] = {}  # "bucket/path" -> bytes


def _key(path: str) -> str:
    return path.removeprefix("memfs://").rstrip("/")


class MemFileSystem(FileSystem):
    """Beam's view (registered for the memfs:// scheme by being a FileSystem subclass)."""

    @classmethod
    def scheme(cls):
        return "memfs"

    def join(self, base, *paths):
        return posixpath.join(base, *paths)

    def split(self, path):
        return posixpath.split(path)

    def has_dirs(self):
        return False

    def mkdirs(self, path):
        pass

    def _list(self, prefix):
        return [FileMetadata("memfs://" + k, len(v)) for k, v in sorted(OBJECTS.items()) if k.startswith(_key(prefix))]

    def create(self, path, *args, **kwargs):
        class Writer(io.BytesIO):
            def close(self):
                OBJECTS[_key(path)] = self.getvalue()
                super().close()

        return Writer()

    def open(self, path, *args, **kwargs):
        return io.BytesIO(OBJECTS[_key(path)])

    def copy(self, sources, destinations):
        for s, d in zip(sources, destinations):
            OBJECTS[_key(d)] = OBJECTS[_key(s)]

    def rename(self, sources, destinations):
        for s, d in zip(sources, destinations):
            OBJECTS[_key(d)] = OBJECTS.pop(_key(s))

    def exists(self, path):
        return _key(path) in OBJECTS

    def size(self, path):
        return len(OBJECTS[_key(path)])

    def last_updated(self, path):
        return 0.0

    def checksum(self, path):
        return str(hash(OBJECTS[_key(path)]))

    def metadata(self, path):
        return FileMetadata(path, len(OBJECTS[_key(path)]))

    def delete(self, paths):
        for path in paths:
            for k in [k for k in OBJECTS if k == _key(path) or k.startswith(_key(path) + "/")]:
                del OBJECTS[k]


class _Handler(pafs.FileSystemHandler):
    """pyarrow's view of the same dict."""

    def get_type_name(self):
        return "memfs"

    def normalize_path(self, path):
        return path

    def equals(self, other):
        return isinstance(other, _Handler)

    def _info(self, path):
        path = path.rstrip("/")
        if path in OBJECTS:
            return pafs.FileInfo(path, pafs.FileType.File, size=len(OBJECTS[path]))
        if any(k.startswith(path + "/") for k in OBJECTS):
            return pafs.FileInfo(path, pafs.FileType.Directory)
        return pafs.FileInfo(path, pafs.FileType.NotFound)

    def get_file_info(self, paths):
        return [self._info(p) for p in paths]

    def get_file_info_selector(self, selector):
        base = selector.base_dir.rstrip("/")
        if self._info(base).type == pafs.FileType.NotFound and not selector.allow_not_found:
            raise FileNotFoundError(base)
        keys = [k for k in sorted(OBJECTS) if k.startswith(base + "/")]
        if not selector.recursive:
            keys = [k for k in keys if "/" not in k[len(base) + 1 :]]
        return [pafs.FileInfo(k, pafs.FileType.File, size=len(OBJECTS[k])) for k in keys]

    def create_dir(self, path, recursive):
        pass

    def delete_dir(self, path):
        for k in [k for k in OBJECTS if k.startswith(path.rstrip("/") + "/")]:
            del OBJECTS[k]

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.delete_dir(path)

    def delete_root_dir_contents(self):
        OBJECTS.clear()

    def delete_file(self, path):
        if path not in OBJECTS:
            raise FileNotFoundError(path)
        del OBJECTS[path]

    def move(self, src, dest):
        OBJECTS[dest] = OBJECTS.pop(src)

    def copy_file(self, src, dest):
        OBJECTS[dest] = OBJECTS[src]

    def open_input_stream(self, path):
        if path not in OBJECTS:
            raise FileNotFoundError(path)
        return pa.PythonFile(io.BytesIO(OBJECTS[path]), mode="r")

    def open_input_file(self, path):
        return self.open_input_stream(path)

    def open_output_stream(self, path, metadata):
        class Writer(io.BytesIO):
            def close(self):
                OBJECTS[path] = self.getvalue()
                super().close()

        return pa.PythonFile(Writer(), mode="w")

    def open_append_stream(self, path, metadata):
        raise NotImplementedError


def use(monkeypatch) -> dict[str, bytes]:
    """Route memfs:// URIs of the commit protocol to the dict (emptied) and return it."""
    from kdaug import commit

    OBJECTS.clear()
    local = commit.filesystem

    def filesystem(root):
        if root.startswith("memfs://"):
            return pafs.PyFileSystem(_Handler()), _key(root), False
        return local(root)

    monkeypatch.setattr(commit.storage, "filesystem", filesystem)  # where Store finds it
    return OBJECTS
