"""tools.download against a local HTTP server that imitates Google Drive."""
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import mxnet as mx
import numpy as np
import pytest

from core import checkpoint
from symbol import get_symbol, param_shapes
from core.config import published_config
from tools import download


class FakeDrive(BaseHTTPRequestHandler):
    """Small files come at once; large ones after a confirmation page; a file
    may be cut short once (an interrupted transfer); Range requests resume."""
    files, large, cut_once, requests = {}, set(), set(), []

    def log_message(self, *args):
        pass

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        file_id = query.get('id', [''])[0]
        type(self).requests.append((file_id, query.get('confirm', [''])[0],
                                    self.headers.get('Range')))
        if file_id not in self.files:
            self.send_response(404)
            self.end_headers()
            return
        if file_id in self.large and query.get('confirm', [''])[0] != 't0k3n':
            page = ('<html><body>Google Drive can\'t scan this file for viruses. <a id="uc" '
                    'href="/uc?export=download&amp;confirm=t0k3n&amp;id=%s">Download anyway</a>'
                    '</body></html>' % file_id).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'text/html; charset=utf-8')
            self.send_header('Content-Length', str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        body = self.files[file_id]
        start = 0
        if self.headers.get('Range'):
            start = int(self.headers['Range'].split('=')[1].rstrip('-'))
            self.send_response(206)
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(body) - 1, len(body)))
        else:
            self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(body) - start))
        self.end_headers()
        if file_id in self.cut_once:
            self.cut_once.discard(file_id)
            self.wfile.write(body[start:start + len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body[start:])


@pytest.fixture
def drive():
    server = ThreadingHTTPServer(('127.0.0.1', 0), FakeDrive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeDrive.files, FakeDrive.large, FakeDrive.cut_once, FakeDrive.requests = {}, set(), set(), []
    yield 'http://127.0.0.1:%d/uc' % server.server_address[1]
    server.shutdown()


def _checkpoint_zip(tmp_path, name, folder='model-hg2d3-cab', stem='model', epoch=0):
    """A zip like the published ones: folder/stem-symbol.json + params."""
    cfg = published_config(name)
    sym = get_symbol(cfg)
    shapes = param_shapes(sym, (1, 3, 128, 128), (1, 68, 64, 64))
    rng = np.random.RandomState(0)
    args = {k: mx.nd.array(rng.normal(0, 0.01, s)) for k, s in shapes.items()
            if k in sym.list_arguments()}
    aux = {k: mx.nd.ones(s) for k, s in shapes.items() if k in sym.list_auxiliary_states()}
    prefix = str(tmp_path / 'src' / stem)
    checkpoint.save_checkpoint(prefix, epoch, sym, args, aux)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as z:
        z.write(prefix + '-symbol.json', '%s/%s-symbol.json' % (folder, stem))
        z.write('%s-%04d.params' % (prefix, epoch), '%s/%s-%04d.params' % (folder, stem, epoch))
    return buffer.getvalue(), args


def test_small_file_downloads_unpacks_and_checks(drive, tmp_path):
    archive, args = _checkpoint_zip(tmp_path, 'hg2d3-cab', folder='inner', stem='weights', epoch=7)
    asset = download.assets()['hg2d3-cab']
    FakeDrive.files[asset.drive_id] = archive
    root = tmp_path / 'root'
    target = download.download(asset, root=str(root), base_url=drive, progress=False)
    sym, loaded, _ = mx.model.load_checkpoint(target + '/model', 0)
    np.testing.assert_array_equal(loaded['heatmap_weight'].asnumpy(),
                                  args['heatmap_weight'].asnumpy())
    assert download.present(asset, str(root))
    assert not list((root / '.downloads').iterdir())
    assert len(FakeDrive.requests) == 1


def test_large_file_confirmation_and_resumed_transfer(drive, tmp_path):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    asset = download.assets()['hg2d3-cab']
    FakeDrive.files[asset.drive_id] = archive
    FakeDrive.large.add(asset.drive_id)
    FakeDrive.cut_once.add(asset.drive_id)
    root = tmp_path / 'root'
    download.download(asset, root=str(root), base_url=drive, progress=False)
    confirmations = [r for r in FakeDrive.requests if r[1] == 't0k3n']
    assert FakeDrive.requests[0][1] == '' and len(confirmations) == 2
    assert confirmations[0][2] is None
    assert confirmations[1][2] == 'bytes=%d-' % (len(archive) // 3)
    assert (root / 'models' / 'model-hg2d3-cab' / 'model-0000.params').is_file()


def test_corrupt_archive_is_rejected_without_partial_model(drive, tmp_path):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    damaged = bytearray(archive)
    damaged[len(damaged) // 2:len(damaged) // 2 + 4096] = b'\xff' * 4096
    asset = download.assets()['hg2d3-cab']
    FakeDrive.files[asset.drive_id] = bytes(damaged)
    root = tmp_path / 'root'
    with pytest.raises(download.DownloadError, match='corrupt|damaged'):
        download.download(asset, root=str(root), base_url=drive, progress=False)
    models = root / 'models'
    assert not models.exists() or not list(models.iterdir())
    assert not list((root / '.downloads').iterdir())


def test_checkpoint_of_another_network_is_refused(drive, tmp_path):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-hpm')
    asset = download.assets()['hg2d3-cab']
    FakeDrive.files[asset.drive_id] = archive
    root = tmp_path / 'root'
    with pytest.raises(download.DownloadError, match='does not match the hg2d3-cab network'):
        download.download(asset, root=str(root), base_url=drive, progress=False)
    assert not (root / 'models' / 'model-hg2d3-cab').exists()


def test_list_shows_available_and_present(capsys):
    assert download.main(['--list']) == 0
    out = capsys.readouterr().out
    for name in ('hg2d3-cab', 'sat2d3-cab-3d', 'essh', 'data_2d'):
        assert name in out
