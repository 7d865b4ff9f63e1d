"""Fetch the published checkpoints, the ESSH detector and the data archives
(MODELS.md) from Google Drive, check and unpack them.

    python -m tools.download --list
    python -m tools.download hg2d3-cab essh
    python -m tools.download all

Transfers resume from `*.part` files; Drive's large-file confirmation page is
followed; an archive that does not test clean is deleted and nothing of it is
installed; every unpacked checkpoint is loaded and compared with the network
this project builds for its configuration.
"""
import argparse
import collections
import glob
import html
import http.client
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from http.cookiejar import CookieJar

from tqdm import tqdm

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


# Transfer ---------------------------------------------------------------------

def _confirmation(page, url):
    """The URL behind Drive's "file too large to scan" page, if it is one."""
    text = page.decode('utf-8', 'replace')
    form = re.search(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', text, re.S)
    if form and 'download' in form.group(1):
        fields = dict(re.findall(r'name="([^"]+)"\s+value="([^"]*)"', form.group(2)))
        return html.unescape(form.group(1)) + '?' + urllib.parse.urlencode(fields)
    link = re.search(r'href="([^"]*confirm=[^"]+)"', text)
    if link:
        return urllib.parse.urljoin(url, html.unescape(link.group(1)))
    return None


def _open(opener, url, offset):
    request = urllib.request.Request(url, headers={'User-Agent': 'face-alignment-toolkit'})
    if offset:
        request.add_header('Range', 'bytes=%d-' % offset)
    return opener.open(request, timeout=60)


def fetch(drive_id, dest, base_url=None, progress=True):
    """Download a Drive file to `dest`, resuming `dest.part`; returns dest."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    url = '%s?%s' % (base_url or DRIVE_URL, urllib.parse.urlencode({'export': 'download',
                                                                  'id': drive_id}))
    part = dest + '.part'
    for attempt in range(RETRIES):
        offset = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            response = _open(opener, url, offset)
            if response.headers.get_content_type() == 'text/html':
                confirm = _confirmation(response.read(), url)
                if confirm is None:
                    raise DownloadError('%s: Drive answered with a page and no file (quota '
                                        'exceeded or file removed?)' % drive_id)
                url = confirm
                continue
            if offset and response.status != 206:
                offset = 0              # the server restarted the file
            total = response.headers.get('Content-Range', '').rpartition('/')[2]
            total = int(total) if total.isdigit() else (
                offset + int(response.headers.get('Content-Length') or 0) or None)
            with open(part, 'ab' if offset else 'wb') as f, tqdm(
                    total=total, initial=offset, unit='B', unit_scale=True, desc=drive_id,
                    disable=not progress, leave=False) as bar:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
            size = os.path.getsize(part)
            if total is not None and size != total:
                raise DownloadError('%s: got %d of %d bytes' % (drive_id, size, total))
            os.replace(part, dest)
            return dest
        except (urllib.error.URLError, ConnectionError, TimeoutError, DownloadError,
                http.client.IncompleteRead) as err:
            if isinstance(err, DownloadError) and 'page' in str(err):
                raise
            if attempt == RETRIES - 1:
                raise DownloadError('%s: transfer failed after %d attempts: %s'
                                    % (drive_id, RETRIES, err))
            print('transfer interrupted (%s); resuming' % err, file=sys.stderr)
    raise DownloadError('%s: too many confirmation pages' % drive_id)


# Archives and installation --------------------------------------------------

def unpack(archive, into):
    """Test and extract a zip or tar archive; DownloadError when damaged."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()
                if bad is not None:
                    raise DownloadError('%s: archive member %s is corrupt' % (archive, bad))
                z.extractall(into)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                t.extractall(into, filter='data')
        else:
            raise DownloadError('%s is neither a zip nor a tar archive' % archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError('%s: damaged archive (%s)' % (archive, err))


def find_checkpoint(folder):
    """(prefix, epoch) of the single *-symbol.json + params pair under folder."""
    symbols = sorted(glob.glob(os.path.join(folder, '**', '*-symbol.json'), recursive=True))
    if len(symbols) != 1:
        raise DownloadError('expected one *-symbol.json in the archive, found %d' % len(symbols))
    prefix = symbols[0][:-len('-symbol.json')]
    params = sorted(glob.glob(prefix + '-*.params'))
    if not params:
        raise DownloadError('no %s-NNNN.params beside %s' % (os.path.basename(prefix),
                                                            symbols[0]))
    return prefix, int(params[-1][len(prefix) + 1:-len('.params')])


def install_checkpoint(unpacked, staging, stem):
    """Copy the archive's checkpoint into `staging` as STEM-symbol.json +
    STEM-0000.params (the names the scripts use)."""
    prefix, epoch = find_checkpoint(unpacked)
    os.makedirs(staging)
    shutil.copy(prefix + '-symbol.json', os.path.join(staging, stem + '-symbol.json'))
    shutil.copy('%s-%04d.params' % (prefix, epoch), os.path.join(staging, stem + '-0000.params'))


def verify_checkpoint(name, prefix):
    """Load a zoo checkpoint and compare it with the symbol built here."""
    import mxnet as mx

    from core.config import published_config
    from symbol import compare_params, describe_mismatch, get_symbol
    try:
        _, arg_params, aux_params = mx.model.load_checkpoint(prefix, 0)
    except Exception as err:
        raise DownloadError('%s-0000.params does not load: %s' % (prefix, err))
    cfg = published_config(name)
    mismatch = compare_params(get_symbol(cfg), arg_params, aux_params, (1, 3, 128, 128),
                              (1, cfg.num_classes, 64, 64))
    if any(mismatch):
        raise DownloadError('%s does not match the %s network: %s'
                            % (prefix, name, describe_mismatch(*mismatch)))


def present(asset, root=ROOT):
    target = os.path.join(root, asset.target)
    if asset.kind == 'checkpoint':
        return os.path.isfile(os.path.join(target, 'model-0000.params'))
    if asset.kind == 'detector':
        return os.path.isfile(os.path.join(target, 'essh-0000.params'))
    return bool(glob.glob(os.path.join(target, '*.rec')))


def download(asset, root=ROOT, base_url=None, progress=True, force=False):
    """Fetch, test, unpack, check and install one asset; returns its folder."""
    target = os.path.join(root, asset.target)
    if present(asset, root) and not force:
        print('%s: already present in %s' % (asset.name, target))
        return target
    cache = os.path.join(root, '.downloads')
    os.makedirs(cache, exist_ok=True)
    archive = fetch(asset.drive_id, os.path.join(cache, asset.name + '.archive'), base_url,
                    progress)
    os.makedirs(os.path.dirname(target) or '.', exist_ok=True)
    work = tempfile.mkdtemp(prefix='.%s-' % asset.name, dir=os.path.dirname(target) or '.')
    try:
        try:
            unpack(archive, os.path.join(work, 'unpacked'))
        except DownloadError:
            os.remove(archive)          # a damaged archive is not kept for resuming
            raise
        staging = os.path.join(work, 'staging')
        if asset.kind == 'checkpoint':
            install_checkpoint(os.path.join(work, 'unpacked'), staging, 'model')
            verify_checkpoint(asset.name, os.path.join(staging, 'model'))
        elif asset.kind == 'detector':
            install_checkpoint(os.path.join(work, 'unpacked'), staging, 'essh')
        else:
            recs = glob.glob(os.path.join(work, 'unpacked', '**', '*.rec'), recursive=True)
            if not recs:
                raise DownloadError('%s: the archive holds no .rec file' % asset.name)
            shutil.move(os.path.dirname(recs[0]), staging)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.remove(archive)
    print('%s: installed in %s' % (asset.name, target))
    return target


def main(argv=None):
    table = assets()
    parser = argparse.ArgumentParser(description='Download published models and data.')
    parser.add_argument('names', nargs='*', help='names from --list, or all')
    parser.add_argument('--list', action='store_true', help='show what is available and present')
    parser.add_argument('--force', action='store_true', help='download again when present')
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
    failed = 0
    for name in names:
        try:
            download(table[name], force=args.force)
        except DownloadError as err:
            print('error: %s' % err, file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
