"""Fetch the published checkpoints, the ESSH detector and the data archives
(README, "Model zoo"; the table is symbol/zoo.py) from Google Drive, check and
unpack them.

    python -m tools.download --list
    python -m tools.download hg2d3-cab essh
    python -m tools.download all
    python -m tools.download --urls hg2d3-cab            # to fetch on another machine
    python -m tools.download hg2d3-cab --from model-hg2d3-cab.zip   # and install it here

Transfers resume from `*.part` files (checking that the server resumes where
asked); Drive's redirects and its large-file confirmation form are followed;
a quota or error page stops with Google's own message; an archive that does
not test clean, or would write outside its folder, is deleted and nothing of
it is installed; every unpacked checkpoint is loaded and compared with the
network this project builds for its configuration. FACE_ALIGN_DRIVE_URL
replaces https://drive.google.com/uc (mirrors, local stand-ins).
"""
import argparse
import collections
import glob
import html.parser
import http.client
import json
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from http.cookiejar import CookieJar

from tqdm import tqdm

from data.files import write_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVE_URL = os.environ.get('FACE_ALIGN_DRIVE_URL', 'https://drive.google.com/uc')
CHUNK = 1 << 20
RETRIES = 5

Asset = collections.namedtuple('Asset', 'name kind drive_id target size_mb')


def assets():
    """Everything downloadable: name -> Asset (kind checkpoint, detector or data)."""
    from symbol.zoo import PUBLISHED
    table = collections.OrderedDict(
        (name, Asset(name, 'checkpoint', m.drive_id, os.path.join('models', m.directory),
                     m.size_mb)) for name, m in PUBLISHED.items())
    table['essh'] = Asset('essh', 'detector', '1eX_i0iZxZTMyJ4QccYd2F4x60GbZqQQJ',
                          'essh-model', None)
    table['data_2d'] = Asset('data_2d', 'data', '1XyZ5yFm-MGNlUiGG0dYRHRTdRiS33zPb', 'data_2d',
                             490)
    table['data_3d'] = Asset('data_3d', 'data', '1i-gUFJhtiZP3uCmNbhLCzd4C4fb-Ljhk', 'data_3d',
                             1540)
    return table


class DownloadError(RuntimeError):
    """A download, archive or checkpoint that cannot be used; says which and why."""


def drive_url(drive_id, base_url=None):
    return '%s?%s' % (base_url or DRIVE_URL, urllib.parse.urlencode({'export': 'download',
                                                                   'id': drive_id}))


def unreachable(err):
    """Whether a failure means the server cannot be reached at all (no
    name resolution, connection refused): retrying will not help."""
    reason = getattr(err, 'reason', err)
    return isinstance(reason, (socket.gaierror, ConnectionRefusedError))


def offline_hint(asset):
    return ('fetch %s on a machine with internet access (python -m tools.download --urls %s) '
            'and install it here with python -m tools.download %s --from FILE'
            % (drive_url(asset.drive_id), asset.name, asset.name))


# Transfer ---------------------------------------------------------------------

class DrivePage(html.parser.HTMLParser):
    """What a Drive HTML answer holds: its forms (id, action, fields in any
    attribute order) and Google's own message (error captions, else the
    title)."""

    def __init__(self, text):
        super(DrivePage, self).__init__()
        self.forms, self._form, self._capture = [], None, None
        self.captions, self.title = [], ''
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'form':
            self._form = {'id': attrs.get('id') or '', 'action': attrs.get('action') or '',
                          'fields': collections.OrderedDict()}
            self.forms.append(self._form)
        elif tag == 'input' and self._form is not None and attrs.get('name'):
            self._form['fields'][attrs['name']] = attrs.get('value') or ''
        elif tag == 'title' or 'uc-error' in (attrs.get('class') or ''):
            self._capture = tag

    def handle_endtag(self, tag):
        if tag == 'form':
            self._form = None
        elif tag == self._capture:
            self._capture = None

    def handle_data(self, data):
        if self._capture == 'title':
            self.title += data.strip()
        elif self._capture and data.strip():
            self.captions.append(data.strip())

    def confirmation(self, page_url):
        """The download URL behind the "cannot scan this file" page: the
        form `download-form`, its fields added to the action's own query."""
        for form in self.forms:
            if form['id'] == 'download-form':
                action = urllib.parse.urljoin(page_url, form['action'])
                parts = urllib.parse.urlsplit(action)
                query = urllib.parse.parse_qsl(parts.query) + list(form['fields'].items())
                return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        return None

    def message(self):
        return ' '.join(self.captions) or self.title or 'no message'


def _open(opener, url, offset):
    request = urllib.request.Request(url, headers={'User-Agent': 'face-alignment-toolkit'})
    if offset:
        request.add_header('Range', 'bytes=%d-' % offset)
    return opener.open(request, timeout=60)


def _range_start(response):
    match = re.match(r'bytes (\d+)-', response.headers.get('Content-Range', ''))
    return int(match.group(1)) if match else None


def fetch(name, drive_id, dest, base_url=None, progress=True, backoff=2.0):
    """Download Drive file `drive_id` (the asset `name`) to `dest`, resuming
    `dest.part`. Redirects and the confirmation form are followed; a quota
    or error page stops with Google's message; a 4xx answer is not retried,
    429 and connection errors are, with exponential backoff."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    url = drive_url(drive_id, base_url)
    part = dest + '.part'
    failures = pages = 0
    while True:
        offset = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            response = _open(opener, url, offset)
        except urllib.error.HTTPError as err:
            if err.code != 429 and 400 <= err.code < 500:
                page = DrivePage(err.read().decode('utf-8', 'replace'))
                raise DownloadError('%s: Drive answered %d %s (%s)'
                                    % (name, err.code, err.reason, page.message()))
            failures = _wait(name, failures, backoff, 'Drive answered %d %s'
                             % (err.code, err.reason))
            continue
        except (urllib.error.URLError, ConnectionError, TimeoutError,
                http.client.HTTPException) as err:
            if unreachable(err):
                raise Unreachable('%s: cannot reach %s (%s)' % (
                    name, urllib.parse.urlsplit(url).netloc, getattr(err, 'reason', err)))
            failures = _wait(name, failures, backoff, err)
            continue
        if response.headers.get_content_type() == 'text/html':
            page = DrivePage(response.read().decode('utf-8', 'replace'))
            confirm = page.confirmation(response.geturl())
            pages += 1
            if confirm is None or pages > 3:
                raise DownloadError('%s: Drive answered with a page instead of the file: %s'
                                    % (name, page.message()))
            url = confirm
            continue
        if offset and (response.status != 206 or _range_start(response) != offset):
            print('%s: the server did not resume at byte %d; starting over' % (name, offset),
                  file=sys.stderr)
            response.close()
            os.remove(part)
            continue
        try:
            _receive(response, part, offset, name, progress)
        except (ConnectionError, TimeoutError, http.client.HTTPException) as err:
            failures = _wait(name, failures, backoff, err)
            continue
        os.replace(part, dest)
        return dest


class Unreachable(DownloadError):
    """The server cannot be reached from this machine."""


def _wait(name, failures, backoff, cause):
    """Sleep before the next attempt (exponential backoff); DownloadError
    after RETRIES failures in a row."""
    if failures + 1 >= RETRIES:
        raise DownloadError('%s: transfer failed after %d attempts: %s' % (name, RETRIES, cause))
    delay = backoff * 2 ** failures
    print('%s: %s; trying again in %.0f s' % (name, cause, delay), file=sys.stderr)
    time.sleep(delay)
    return failures + 1


def _receive(response, part, offset, name, progress):
    """Append the body to `part`; ConnectionError when it is cut short."""
    total = response.headers.get('Content-Range', '').rpartition('/')[2]
    total = int(total) if total.isdigit() else (
        offset + int(response.headers.get('Content-Length') or 0) or None)
    with open(part, 'ab' if offset else 'wb') as f, tqdm(
            total=total, initial=offset, unit='B', unit_scale=True, desc=name,
            disable=not progress, leave=False) as bar:
        while True:
            chunk = response.read(CHUNK)
            if not chunk:
                break
            f.write(chunk)
            bar.update(len(chunk))
    size = os.path.getsize(part)
    if total is not None and size != total:
        raise ConnectionError('got %d of %d bytes' % (size, total))


# Archives and installation --------------------------------------------------

def unpack(archive, into, name):
    """Test and extract a zip or tar archive; DownloadError when damaged or
    when a member would land outside `into`."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()
                if bad is not None:
                    raise DownloadError('%s: archive member %s is corrupt' % (name, bad))
                root = os.path.realpath(into)
                for member in z.namelist():
                    target = os.path.realpath(os.path.join(into, member))
                    if os.path.commonpath([root, target]) != root:
                        raise DownloadError('%s: archive member %s would be written outside %s; '
                                            'refused' % (name, member, into))
                z.extractall(into)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                t.extractall(into, filter='data')
        else:
            with open(archive, 'rb') as f:
                head = f.read(512)
            if head.lstrip().lower().startswith((b'<!doctype', b'<html', b'<head')):
                raise DownloadError('%s: %s is Google Drive\'s web page, not the file (saved '
                                    'from the browser: the warning page of a large file); '
                                    'follow its "Download anyway" button and install what it '
                                    'gives with --from' % (name, archive))
            if head.startswith((b'PK\x03\x04', b'\x1f\x8b', b'BZh')):
                raise DownloadError('%s: the archive is incomplete (its end is missing: the '
                                    'transfer was cut short, %d bytes); run the download again'
                                    % (name, os.path.getsize(archive)))
            raise DownloadError('%s: the download is neither a zip nor a tar archive' % name)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError('%s: damaged archive (%s)' % (name, err))


def find_checkpoint(folder, name):
    """(prefix, epoch) of the single *-symbol.json + params pair under folder."""
    symbols = sorted(glob.glob(os.path.join(folder, '**', '*-symbol.json'), recursive=True))
    if len(symbols) != 1:
        raise DownloadError('%s: expected one *-symbol.json in the archive, found %d'
                            % (name, len(symbols)))
    prefix = symbols[0][:-len('-symbol.json')]
    params = sorted(glob.glob(prefix + '-*.params'))
    if not params:
        raise DownloadError('%s: no %s-NNNN.params beside %s in the archive'
                            % (name, os.path.basename(prefix), os.path.basename(symbols[0])))
    return prefix, int(params[-1][len(prefix) + 1:-len('.params')])


def install_checkpoint(unpacked, staging, stem, name):
    """Copy the archive's checkpoint into `staging` as STEM-symbol.json +
    STEM-0000.params (the names the scripts use)."""
    prefix, epoch = find_checkpoint(unpacked, name)
    os.makedirs(staging)
    shutil.copy(prefix + '-symbol.json', os.path.join(staging, stem + '-symbol.json'))
    shutil.copy('%s-%04d.params' % (prefix, epoch), os.path.join(staging, stem + '-0000.params'))


def verify_checkpoint(name, prefix):
    """Load a zoo checkpoint and compare it with the symbol built here."""
    import mxnet as mx

    from core.plumbing.config import published_config
    from symbol import compare_params, describe_mismatch, get_symbol
    try:
        _, arg_params, aux_params = mx.model.load_checkpoint(prefix, 0)
    except Exception as err:
        raise DownloadError('%s: the checkpoint in the archive does not load: %s' % (name, err))
    cfg = published_config(name)
    mismatch = compare_params(get_symbol(cfg), arg_params, aux_params, (1, 3, 128, 128),
                              (1, cfg.num_classes, 64, 64))
    if any(mismatch):
        raise DownloadError('%s: the checkpoint in the archive does not match the %s network: %s'
                            % (name, name, describe_mismatch(*mismatch)))


def present(asset, root=ROOT):
    target = os.path.join(root, asset.target)
    if asset.kind == 'checkpoint':
        return os.path.isfile(os.path.join(target, 'model-0000.params'))
    if asset.kind == 'detector':
        return os.path.isfile(os.path.join(target, 'essh-0000.params'))
    return bool(glob.glob(os.path.join(target, '*.rec')))


def manifest_path(target, name):
    """The list of the files an asset installed in `target`."""
    return os.path.join(target, '.%s.installed.json' % name)


def _files(folder):
    """Paths of the files under `folder`, relative to it."""
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, names in os.walk(folder) for f in names)


def _same(a, b):
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        while True:
            ca, cb = fa.read(CHUNK), fb.read(CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def install(staging, target, name):
    """Move the files of `staging` into `target`, deleting nothing that the
    asset did not install there before: a file of the user's in the way
    (not in the asset's manifest, and not identical) refuses the install
    before anything changes. Returns the installed paths (relative)."""
    ours = set()
    if os.path.isfile(manifest_path(target, name)):
        with open(manifest_path(target, name)) as f:
            ours = set(json.load(f))
    new = _files(staging)
    clashes = [f for f in new if os.path.lexists(os.path.join(target, f)) and f not in ours
               and not _same(os.path.join(staging, f), os.path.join(target, f))]
    if clashes:
        raise DownloadError('%s: %s already holds %s, which this download did not install; '
                            'nothing was changed (move %s away, then run the download again)'
                            % (name, target, ', '.join(clashes[:3]) + (' ...' if len(clashes) > 3
                                                                       else ''),
                               'them' if len(clashes) > 1 else 'it'))
    os.makedirs(target, exist_ok=True)
    for relative in new:
        destination = os.path.join(target, relative)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        os.replace(os.path.join(staging, relative), destination)
    for relative in sorted(ours - set(new)):        # the asset's own files it no longer has
        if os.path.isfile(os.path.join(target, relative)):
            os.remove(os.path.join(target, relative))
    write_atomic(manifest_path(target, name), json.dumps(new, indent=1))
    return new


def download(asset, root=ROOT, base_url=None, progress=True, force=False, backoff=2.0,
             archive=None):
    """Fetch (or take the `archive` fetched elsewhere), test, unpack, check
    and install one asset; returns its folder. Only the asset's own files
    are written (or, with `force`, replaced); `archive` is never deleted."""
    target = os.path.join(root, asset.target)
    if present(asset, root) and not force:
        print('%s: already present in %s' % (asset.name, target))
        return target
    if archive is not None:
        if not os.path.isfile(archive):
            raise DownloadError('%s: --from %s does not exist' % (asset.name, archive))
        install_archive(asset, archive, target)
        return target
    cache = os.path.join(root, '.downloads')
    os.makedirs(cache, exist_ok=True)
    try:
        fetched = fetch(asset.name, asset.drive_id, os.path.join(cache, asset.name + '.archive'),
                        base_url, progress, backoff)
    except Unreachable as err:
        raise Unreachable('%s; this machine may be offline or air-gapped: %s'
                          % (err, offline_hint(asset)))
    try:
        install_archive(asset, fetched, target)
    except DownloadError:
        os.remove(fetched)          # a damaged archive is not kept for resuming
        raise
    os.remove(fetched)
    return target


def install_archive(asset, archive, target):
    """Test, unpack, check and install `archive` as `asset` in `target`."""
    os.makedirs(os.path.dirname(target) or '.', exist_ok=True)
    work = tempfile.mkdtemp(prefix='.%s-' % asset.name, dir=os.path.dirname(target) or '.')
    try:
        unpack(archive, os.path.join(work, 'unpacked'), asset.name)
        staging = os.path.join(work, 'staging')
        if asset.kind == 'checkpoint':
            install_checkpoint(os.path.join(work, 'unpacked'), staging, 'model', asset.name)
            verify_checkpoint(asset.name, os.path.join(staging, 'model'))
        elif asset.kind == 'detector':
            install_checkpoint(os.path.join(work, 'unpacked'), staging, 'essh', asset.name)
        else:
            recs = glob.glob(os.path.join(work, 'unpacked', '**', '*.rec'), recursive=True)
            if not recs:
                raise DownloadError('%s: the archive holds no .rec file' % asset.name)
            shutil.move(os.path.dirname(recs[0]), staging)
        install(staging, target, asset.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print('%s: installed in %s' % (asset.name, target))


def print_urls(names, table):
    """Where each asset can be fetched by hand, and what is checked."""
    for name in names:
        asset = table[name]
        size = '%d MB' % asset.size_mb if asset.size_mb else 'size not published'
        print('%s: %s\n  save it under any name (e.g. %s.zip, %s), then: python -m '
              'tools.download %s --from FILE\n  no checksum is published; the archive is '
              'tested, unpacked in a scratch folder%s before anything is installed'
              % (name, drive_url(asset.drive_id), name, size, name,
                 ' and its checkpoint compared with this network' if asset.kind == 'checkpoint'
                 else ''))


def main(argv=None):
    table = assets()
    parser = argparse.ArgumentParser(description='Download published models and data.')
    parser.add_argument('names', nargs='*', help='names from --list, or all')
    parser.add_argument('--list', action='store_true', help='show what is available and present')
    parser.add_argument('--force', action='store_true', help='download again when present')
    parser.add_argument('--urls', action='store_true',
                        help='print where the names can be fetched by hand, and install nothing')
    parser.add_argument('--from', dest='archive', metavar='FILE',
                        help='install the archive FILE (fetched elsewhere) as the one name given')
    args = parser.parse_args(argv)
    if args.list or not args.names:
        print('%-15s %-10s %8s  %-7s %s' % ('name', 'kind', 'size', 'present', 'folder'))
        for asset in table.values():
            size = '%d MB' % asset.size_mb if asset.size_mb else '?'
            print('%-15s %-10s %8s  %-7s %s' % (asset.name, asset.kind, size,
                                               'yes' if present(asset) else 'no', asset.target))
        return 0
    names = list(table) if args.names == ['all'] else args.names
    unknown = [n for n in names if n not in table]
    if unknown:
        parser.error('unknown name(s) %s; choose from %s or all' % (', '.join(unknown),
                                                                   ', '.join(table)))
    if args.urls:
        print_urls(names, table)
        return 0
    if args.archive and len(names) != 1:
        parser.error('--from installs one archive: give exactly one name')
    failed = 0
    for name in names:
        try:
            download(table[name], force=args.force, archive=args.archive)
        except Unreachable as err:
            print('error: %s' % err, file=sys.stderr)
            rest = names[names.index(name) + 1:]
            for other in rest:          # the others cannot be reached either
                print('error: %s: not fetched either; %s' % (other, offline_hint(table[other])),
                      file=sys.stderr)
            return 1
        except DownloadError as err:
            print('error: %s' % err, file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
