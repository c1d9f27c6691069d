"""Files into and out of containers: data zips in, changed files and archives out, all streamed."""
import bisect
import io
import json
import mimetypes
import posixpath
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from base64 import b64decode
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from common.errors import BadInput, NotFound, RemoteError, TooLarge
from common.spec import confined_path
from satellite.engine import client, docker_errors, engine_name

# Reads of the engine's stream. Large reads make few trips through urllib3, http.client's
# chunked decoding and the gevent hub per MiB (64 KiB reads, and tarfile's 10 KiB ones before
# them, made archives about 2x slower than `docker cp`); memory stays bounded by one read per
# open download.
CHUNK = 1024 * 1024
# Go's os.FileMode type bits, as the engine reports them in X-Docker-Container-Path-Stat.
GO_MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)


# ---- data zips in ----------------------------------------------------------------------------

# What reading a damaged or unusual zip raises: a bad CRC or header (BadZipFile), a method
# zipfile lacks such as deflate64 (NotImplementedError), broken deflate data (zlib.error), a
# short member (EOFError; tarfile says OSError when fewer bytes come than the size declared).
BAD_ZIP_DATA = (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError, OSError)

def checked_zip_members(zip_file):
    """Regular-file and folder entries of a zip, after every safety check; raise on the first problem."""
    try:
        archive = zipfile.ZipFile(zip_file)
    except BAD_ZIP_DATA:
        raise BadInput("dataurl", "the data is not a zip file") from None
    members = archive.infolist()
    if len(members) > settings.DATA_MAX_ENTRIES:
        raise TooLarge(f"dataurl: {len(members)} entries, over the limit of {settings.DATA_MAX_ENTRIES}",
                       detail={"field": "dataurl"})
    total = 0
    for member in members:
        name = member.filename
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise BadInput("dataurl", f"the zip holds an absolute path: {name}")
        if ".." in name.replace("\\", "/").split("/"):
            raise BadInput("dataurl", f"the zip holds a parent path: {name}")
        file_type = stat.S_IFMT(member.external_attr >> 16)  # 0 when the zip tool wrote no Unix mode
        if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise BadInput("dataurl", f"the zip holds a link or special file: {name}")
        total += member.file_size
        if total > settings.DATA_MAX_UNPACKED_BYTES:
            raise TooLarge(f"dataurl: unpacks to over {settings.DATA_MAX_UNPACKED_BYTES} bytes",
                           detail={"field": "dataurl"})
        if member.file_size > 1024 * 1024 and member.file_size > settings.DATA_MAX_RATIO * max(member.compress_size, 1):
            raise TooLarge(f"dataurl: {name} expands over {settings.DATA_MAX_RATIO} times (a zip bomb?)",
                           detail={"field": "dataurl"})
    return archive, members


def zip_to_tar(zip_file, datapath):
    """A temp file holding a tar of the zip's entries under `datapath`, ready for put_archive at /."""
    archive, members = checked_zip_members(zip_file)
    out = tempfile.TemporaryFile()
    now = time.time()
    with tarfile.open(fileobj=out, mode="w") as tar:
        parts = datapath.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            folder = tarfile.TarInfo("/".join(parts[:depth]))
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, now
            tar.addfile(folder)
        for member in members:
            info = tarfile.TarInfo(posixpath.normpath(posixpath.join(datapath.strip("/"), member.filename)))
            info.mtime = now
            if member.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.size = member.file_size
            info.mode = (member.external_attr >> 16) & 0o777 or 0o644
            try:
                with archive.open(member) as source:  # zipfile stops at the declared size and checks the CRC
                    tar.addfile(info, source)
            except BAD_ZIP_DATA as exc:
                out.close()
                raise BadInput("dataurl", f"the zip entry {member.filename} can not be unpacked: "
                                          f"{exc or exc.__class__.__name__}") from None
    out.seek(0)
    return out


def script_tar(script, scriptname):
    """A small in-memory tar holding the script as /boatload/<scriptname>, mode 0755."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo("boatload")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        info = tarfile.TarInfo(f"boatload/{scriptname}")
        info.size, info.mode, info.mtime = len(script), 0o755, time.time()
        tar.addfile(info, io.BytesIO(script))
    return buffer.getvalue()


# ---- changed files out -----------------------------------------------------------------------

def path_stat(container_id, path):
    """The engine's stat of one path in a container, without reading the file."""
    api = client().api
    response = api.head(api._url("/containers/{0}/archive", container_id), params={"path": path})
    if response.status_code == 404:
        return None
    api._raise_for_status(response)
    return json.loads(b64decode(response.headers["X-Docker-Container-Path-Stat"]))


def changed_paths(container_id):
    """Changed or added leaf paths of a container, sorted (so numbers are stable).

    The engine answers the whole diff at once; nothing else here is per changed file, so a
    container with 100,000 files costs one engine call until a page of them is asked for.
    """
    with docker_errors():
        changes = client().api.diff(container_id) or []
    paths = sorted(change["Path"] for change in changes if change["Kind"] in (0, 1))
    folders = {posixpath.dirname(path) for path in paths}
    return [path for path in paths if path not in folders]


def _stats(container_id, paths):
    with docker_errors(), ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda p: path_stat(container_id, p), paths))


def _is_regular(info):
    return info is not None and not info["mode"] & GO_MODE_TYPE


def changed_files(container_id, *, cursor=None, limit=None):
    """(page, next cursor): changed regular files after `cursor` (a path), at most `limit` paths looked at.

    A file's number is its position among the changed paths, so it stays the same on every
    page; folders, links and other special files keep their numbers unused.
    """
    paths = changed_paths(container_id)
    first = bisect.bisect_right(paths, cursor) if cursor else 0
    window = paths[first:first + limit] if limit else paths[first:]
    entries = [{"number": first + index, "path": path, "size": info["size"], "mtime": info.get("mtime")}
               for index, (path, info) in enumerate(zip(window, _stats(container_id, window))) if _is_regular(info)]
    more = limit and first + limit < len(paths)
    return entries, (window[-1] if more else None)


def changes_page(container_id, *, cursor=None, limit=None):
    """(page, next cursor) of the engine's diff, sorted by path."""
    with docker_errors():
        changes = sorted(client().api.diff(container_id) or [], key=lambda change: change["Path"])
    first = bisect.bisect_right([change["Path"] for change in changes], cursor) if cursor else 0
    window = changes[first:first + limit] if limit else changes[first:]
    return window, (window[-1]["Path"] if limit and first + limit < len(changes) else None)


def find_changed_file(container_id, *, path=None, number=None):
    """The entry of one changed regular file, by number or path; one stat, whatever the diff holds."""
    paths = changed_paths(container_id)
    if number is not None:
        if not 0 <= number < len(paths):
            raise NotFound(f"No changed file number {number}; the container has {len(paths)} changed paths.")
        wanted = paths[number]
    else:
        wanted = confined_path(path)
        number = bisect.bisect_left(paths, wanted)
        if number == len(paths) or paths[number] != wanted:
            raise NotFound(f"{wanted} is not a changed file of this container.")
    [info] = _stats(container_id, [wanted])
    if not _is_regular(info):
        raise NotFound(f"Changed path {number} ({wanted}) is not a regular file.")
    return {"number": number, "path": wanted, "size": info["size"], "mtime": info.get("mtime")}


class _HeaderReader:
    """The engine's archive stream as the file tarfile reads one member's header from.

    tarfile (mode "r:") reads a header block by block (a pax or GNU long-name header first, if
    any) and only "seeks" to where it already is, so after `next()` the stream stands exactly
    at the member's data: that is passed on as the engine sent it, in large reads, not through
    tarfile's 10 KiB buffer and copies.
    """

    def __init__(self, raw):
        self.raw, self.position = raw, 0

    def read(self, size=-1):
        data = self.raw.read(size)
        self.position += len(data)
        return data

    def tell(self):
        return self.position

    def seek(self, position, whence=io.SEEK_SET):
        if whence != io.SEEK_SET or position != self.position:
            raise io.UnsupportedOperation("the engine's archive stream only reads forward")
        return position


def _open_member(container_id, path):
    """(response, member) of the one entry get_archive answers for `path`, the response standing
    at the member's data; the response must be closed."""
    with docker_errors():
        # identity: otherwise the engine gzips the tar for requests' default Accept-Encoding,
        # which costs both ends CPU and made archives 8x slower than `docker cp`.
        response = client().api._get(
            client().api._url("/containers/{0}/archive", container_id), params={"path": path}, stream=True,
            headers={"Accept-Encoding": "identity"})
        client().api._raise_for_status(response)
    try:
        member = tarfile.open(fileobj=_HeaderReader(response.raw), mode="r:").next()
    except (tarfile.TarError, io.UnsupportedOperation, OSError) as exc:
        response.close()
        raise RemoteError(f"The {engine_name()} answered an archive of {path} that can not be read: {exc}",
                          remote=settings.NAME, code="engine_error") from None
    return response, member


def _passed_on(raw, count):
    """`count` bytes of the engine's stream, as it sends them, at most CHUNK a read."""
    while count > 0:
        chunk = raw.read(min(CHUNK, count))
        if not chunk:
            raise RemoteError(f"The {engine_name()} ended an archive {count} bytes short.", remote=settings.NAME,
                              code="engine_error")
        count -= len(chunk)
        yield chunk


def stream_file(container_id, path):
    """(chunks, size, content type, closeable) of one file of a container, read as it is sent."""
    response, member = _open_member(container_id, path)
    if member is None or not member.isreg():
        response.close()
        raise NotFound(f"{path} is not a regular file.")
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return _passed_on(response.raw, member.size), member.size, content_type, response


class ArchiveStream:
    """One tar of every changed file, built member by member as the client reads it."""

    def __init__(self, container_id, paths, compress=False):
        self.container_id = container_id
        self.paths = paths  # changed_paths(): what is not a regular file is skipped as it is opened
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if compress else None
        self.current = None

    def close(self):
        if self.current is not None:
            self.current.close()

    def _raw(self):
        for path in self.paths:
            self.current, member = _open_member(self.container_id, path)
            try:
                if member is None or not member.isreg():
                    continue
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size, info.mode, info.mtime = member.size, member.mode, member.mtime
                yield info.tobuf(format=tarfile.PAX_FORMAT)
                # The data and its padding to a whole block, as the engine sent them (tar pads with NULs).
                padded = -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                yield from _passed_on(self.current.raw, padded)
            finally:
                self.current.close()
                self.current = None
        yield tarfile.NUL * (tarfile.BLOCKSIZE * 2)

    def __iter__(self):
        for block in self._raw():
            if self.compressor is None:
                yield block
            else:
                yield self.compressor.compress(block)
        if self.compressor is not None:
            yield self.compressor.flush()
