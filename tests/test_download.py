"""tools.download against a local stand-in for today's Google Drive: a 303
from drive.google.com/uc to a second host, the "cannot scan this file" form
(hidden id, export, confirm, uuid), quota pages, 429s, resumed ranges."""
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import mxnet as mx
import numpy as np
import pytest

from core.plumbing import checkpoint
from core.plumbing.config import published_config
from symbol import get_symbol, param_shapes
from tools import download

UUID = '5f1e-77aa'
FORM = ('<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>'
        '<p class="uc-warning-subcaption">Google Drive can\'t scan this file for viruses.</p>'
        '<form method="get" action="%(action)s" id="download-form">'
        '<input type="submit" id="uc-download-link" value="Download anyway"/>'
        '<input value="%(id)s" type="hidden" name="id">'
        '<input type="hidden" value="download" name="export">'
        '<input name="confirm" type="hidden" value="t">'
        '<input type="hidden" name="uuid" value="' + UUID + '"></form></body></html>')
QUOTA = ('<html><head><title>Google Drive - Quota exceeded</title></head><body>'
         '<p class="uc-error-caption">Sorry, you can\'t view or download this file at this '
         'time.</p><p class="uc-error-subcaption">Too many users have viewed or downloaded this '
         'file recently. Please try accessing the file again later.</p></body></html>')


class Drive(object):
    files, large, quota, cut_once, busy_once, bad_range, dead = {}, set(), set(), set(), set(), \
        set(), set()
    requests = []
    content_host = None


class FirstHost(BaseHTTPRequestHandler):
    """drive.google.com/uc: redirects to the content host."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        file_id = query.get('id', [''])[0]
        Drive.requests.append(('uc', file_id, dict(query), None))
        if file_id in Drive.dead:
            self.connection.close()
            return
        self.send_response(303)
        self.send_header('Location', '%s/download?id=%s&export=download'
                         % (Drive.content_host, file_id))
        self.end_headers()


class ContentHost(BaseHTTPRequestHandler):
    """drive.usercontent.google.com/download."""

    def log_message(self, *args):
        pass

    def _page(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        file_id = query.get('id', '')
        Drive.requests.append(('download', file_id, query, self.headers.get('Range')))
        if file_id not in Drive.files:
            return self._page(404, '<html><title>Not Found</title></html>')
        if file_id in Drive.quota:
            return self._page(200, QUOTA)
        if file_id in Drive.busy_once:
            Drive.busy_once.discard(file_id)
            return self._page(429, '<html><title>Too many requests</title></html>')
        confirmed = (query.get('confirm'), query.get('uuid'), query.get('authuser')) == (
            't', UUID, '0')
        if file_id in Drive.large and not confirmed:
            return self._page(200, FORM % {'id': file_id,
                                           'action': Drive.content_host + '/download?authuser=0'})
        body, start = Drive.files[file_id], 0
        if self.headers.get('Range'):
            start = int(self.headers['Range'].split('=')[1].rstrip('-'))
            claimed = 0 if file_id in Drive.bad_range else start
            self.send_response(206)
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (claimed, len(body) - 1,
                                                                   len(body)))
            if file_id in Drive.bad_range:
                start = 0
        else:
            self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(body) - start))
        self.end_headers()
        if file_id in Drive.cut_once:
            Drive.cut_once.discard(file_id)
            self.wfile.write(body[start:start + len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body[start:])


@pytest.fixture
def drive():
    servers = [ThreadingHTTPServer(('127.0.0.1', 0), handler)
               for handler in (FirstHost, ContentHost)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    Drive.files, Drive.requests = {}, []
    for name in ('large', 'quota', 'cut_once', 'busy_once', 'bad_range', 'dead'):
        setattr(Drive, name, set())
    Drive.content_host = 'http://localhost:%d' % servers[1].server_address[1]   # another host
    yield 'http://127.0.0.1:%d/uc' % servers[0].server_address[1]
    for server in servers:
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


ASSET = download.assets()['hg2d3-cab']


def _get(drive, tmp_path):
    return download.download(ASSET, root=str(tmp_path / 'root'), base_url=drive, progress=False,
                             backoff=0.01)


def test_small_file_through_the_redirect(drive, tmp_path):
    archive, args = _checkpoint_zip(tmp_path, 'hg2d3-cab', folder='inner', stem='weights',
                                    epoch=7)
    Drive.files[ASSET.drive_id] = archive
    target = _get(drive, tmp_path)
    _, loaded, _ = mx.model.load_checkpoint(target + '/model', 0)
    np.testing.assert_array_equal(loaded['heatmap_weight'].asnumpy(),
                                  args['heatmap_weight'].asnumpy())
    assert download.present(ASSET, str(tmp_path / 'root'))
    assert not list((tmp_path / 'root' / '.downloads').iterdir())
    assert [r[0] for r in Drive.requests] == ['uc', 'download']


def test_large_file_form_and_a_resumed_transfer(drive, tmp_path):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    Drive.files[ASSET.drive_id] = archive
    Drive.large.add(ASSET.drive_id)
    Drive.cut_once.add(ASSET.drive_id)
    _get(drive, tmp_path)
    confirmed = [r for r in Drive.requests if r[2].get('uuid') == UUID]
    assert len(confirmed) == 2
    assert confirmed[0][2] == {'id': ASSET.drive_id, 'export': 'download', 'confirm': 't',
                               'uuid': UUID, 'authuser': '0'}
    assert confirmed[0][3] is None and confirmed[1][3] == 'bytes=%d-' % (len(archive) // 3)
    assert (tmp_path / 'root' / 'models' / 'model-hg2d3-cab' / 'model-0000.params').is_file()


def test_a_quota_page_shows_googles_message(drive, tmp_path):
    Drive.files[ASSET.drive_id] = b'x'
    Drive.quota.add(ASSET.drive_id)
    with pytest.raises(download.DownloadError) as err:
        _get(drive, tmp_path)
    assert str(err.value) == (
        "hg2d3-cab: Drive answered with a page instead of the file: Sorry, you can't view or "
        "download this file at this time. Too many users have viewed or downloaded this file "
        "recently. Please try accessing the file again later.")


def test_a_404_is_not_retried_and_names_the_asset(drive, tmp_path):
    with pytest.raises(download.DownloadError, match=r'^hg2d3-cab: Drive answered 404 Not Found'):
        _get(drive, tmp_path)
    assert [r[0] for r in Drive.requests] == ['uc', 'download']


def test_429_and_connection_errors_back_off_then_give_up(drive, tmp_path, capsys):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    Drive.files[ASSET.drive_id] = archive
    Drive.busy_once.add(ASSET.drive_id)
    _get(drive, tmp_path)
    assert 'Drive answered 429' in capsys.readouterr().err
    Drive.dead.add('dead-id')
    with pytest.raises(download.DownloadError, match='transfer failed after 5 attempts'):
        download.fetch('essh', 'dead-id', str(tmp_path / 'x'), drive, False, backoff=0.01)
    waits = [line for line in capsys.readouterr().err.splitlines() if 'trying again' in line]
    assert [w.rsplit(' in ', 1)[1] for w in waits] == ['0 s'] * 4
    assert len([r for r in Drive.requests if r[1] == 'dead-id']) == 5


def test_a_resume_that_does_not_start_where_asked_starts_over(drive, tmp_path, capsys):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    Drive.files[ASSET.drive_id] = archive
    Drive.cut_once.add(ASSET.drive_id)
    Drive.bad_range.add(ASSET.drive_id)
    _get(drive, tmp_path)
    assert 'did not resume at byte %d; starting over' % (len(archive) // 3) in \
        capsys.readouterr().err
    assert (tmp_path / 'root' / 'models' / 'model-hg2d3-cab' / 'model-0000.params').is_file()


def test_corrupt_and_escaping_archives_install_nothing(drive, tmp_path):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    damaged = bytearray(archive)
    damaged[len(damaged) // 2:len(damaged) // 2 + 4096] = b'\xff' * 4096
    Drive.files[ASSET.drive_id] = bytes(damaged)
    with pytest.raises(download.DownloadError, match='hg2d3-cab: .*(corrupt|damaged)'):
        _get(drive, tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as z:
        z.writestr('model-hg2d3-cab/model-symbol.json', '{}')
        z.writestr('../../escaped.txt', 'outside')
    Drive.files[ASSET.drive_id] = buffer.getvalue()
    with pytest.raises(download.DownloadError, match='escaped.txt would be written outside'):
        _get(drive, tmp_path)
    assert not list(tmp_path.rglob('escaped.txt'))
    models = tmp_path / 'root' / 'models'
    assert not models.exists() or not list(models.iterdir())
    assert not list((tmp_path / 'root' / '.downloads').iterdir())


def test_checkpoint_of_another_network_is_refused(drive, tmp_path):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-hpm')
    Drive.files[ASSET.drive_id] = archive
    with pytest.raises(download.DownloadError,
                       match='hg2d3-cab: the checkpoint in the archive does not match'):
        _get(drive, tmp_path)
    assert not (tmp_path / 'root' / 'models' / 'model-hg2d3-cab').exists()


def test_list_shows_available_and_present(capsys):
    assert download.main(['--list']) == 0
    out = capsys.readouterr().out
    for name in ('hg2d3-cab', 'sat2d3-cab-3d', 'essh', 'data_2d'):
        assert name in out


def _tree(folder):
    import hashlib
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def test_an_install_keeps_every_file_it_did_not_put_there(drive, tmp_path):
    """A fine-tuning run kept in the model's folder, and the tracked
    essh-model/README.md, survive installs and --force re-installs."""
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    Drive.files[ASSET.drive_id] = archive
    folder = tmp_path / 'root' / 'models' / 'model-hg2d3-cab'
    folder.mkdir(parents=True)
    for name in ('ft-symbol.json', 'ft-0001.params', 'ft-0002.params', 'ft-config.json',
                 'ft-log.csv', 'ft-log.png', 'ft-state.json', 'notes.txt', 'model-log.csv'):
        (folder / name).write_text('the user\'s own ' + name)
    users = _tree(folder)
    _get(drive, tmp_path)
    after = _tree(folder)
    assert {k: after[k] for k in users} == users
    assert set(after) - set(users) == {'model-symbol.json', 'model-0000.params',
                                       '.hg2d3-cab.installed.json'}
    download.download(ASSET, root=str(tmp_path / 'root'), base_url=drive, progress=False,
                      force=True, backoff=0.01)
    assert _tree(folder) == after           # the same archive again: the same files

    essh = download.assets()['essh']
    Drive.files[essh.drive_id], _ = _checkpoint_zip(tmp_path / 'e', 'hg2d3-cab', stem='essh')
    readme = tmp_path / 'root' / 'essh-model' / 'README.md'
    readme.parent.mkdir(parents=True)
    readme.write_text('Put the ESSH checkpoint here (python -m tools.download essh).\n')
    download.download(essh, root=str(tmp_path / 'root'), base_url=drive, progress=False,
                      backoff=0.01)
    assert readme.read_text().startswith('Put the ESSH checkpoint here')
    assert (readme.parent / 'essh-0000.params').is_file()


def test_a_users_file_in_the_way_refuses_the_install_and_changes_nothing(drive, tmp_path):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    Drive.files[ASSET.drive_id] = archive
    folder = tmp_path / 'root' / 'models' / 'model-hg2d3-cab'
    folder.mkdir(parents=True)
    (folder / 'model-symbol.json').write_text('{"my": "own network"}')
    before = _tree(folder)
    with pytest.raises(download.DownloadError, match='already holds model-symbol.json, which this '
                       'download did not install; nothing was changed'):
        _get(drive, tmp_path)
    assert _tree(folder) == before


def test_force_on_a_data_set_keeps_the_users_own_sets(drive, tmp_path):
    data = download.assets()['data_2d']
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as z:
        for name in ('train.rec', 'train.idx', 'ibug.rec', 'ibug.idx'):
            z.writestr('data_2d/' + name, 'records of ' + name)
    Drive.files[data.drive_id] = buffer.getvalue()
    root = tmp_path / 'root'
    download.download(data, root=str(root), base_url=drive, progress=False, backoff=0.01)
    (root / 'data_2d' / 'my_test.rec').write_text('the user\'s own test set')
    (root / 'data_2d' / 'my_test.idx').write_text('0\t0\n')
    mine = {k: v for k, v in _tree(root / 'data_2d').items() if k.startswith('my_test')}
    download.download(data, root=str(root), base_url=drive, progress=False, force=True,
                      backoff=0.01)
    after = _tree(root / 'data_2d')
    assert {k: after[k] for k in mine} == mine and 'train.rec' in after


def test_a_truncated_archive_is_called_incomplete(drive, tmp_path):
    archive, _ = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    Drive.files[ASSET.drive_id] = archive[:len(archive) // 2]
    with pytest.raises(download.DownloadError, match='the archive is incomplete'):
        _get(drive, tmp_path)


def test_an_archive_fetched_elsewhere_installs_with_the_same_checks(tmp_path, capsys):
    archive, args = _checkpoint_zip(tmp_path, 'hg2d3-cab')
    fetched = tmp_path / 'laptop' / 'hg2d3-cab.zip'
    fetched.parent.mkdir()
    fetched.write_bytes(archive)
    root = tmp_path / 'root'
    target = download.download(ASSET, root=str(root), archive=str(fetched))
    _, loaded, _ = mx.model.load_checkpoint(target + '/model', 0)
    np.testing.assert_array_equal(loaded['heatmap_weight'].asnumpy(),
                                  args['heatmap_weight'].asnumpy())
    assert fetched.read_bytes() == archive                  # the user's file stays
    other, _ = _checkpoint_zip(tmp_path / 'o', 'hg2d3-hpm')
    (tmp_path / 'laptop' / 'wrong.zip').write_bytes(other)
    with pytest.raises(download.DownloadError, match='does not match the hg2d3-cab network'):
        download.download(ASSET, root=str(tmp_path / 'other-root'),
                          archive=str(tmp_path / 'laptop' / 'wrong.zip'))
    assert (tmp_path / 'laptop' / 'wrong.zip').is_file()
    assert not (tmp_path / 'other-root' / 'models' / 'model-hg2d3-cab').exists()
    with pytest.raises(SystemExit):
        download.main(['hg2d3-cab', 'essh', '--from', str(fetched)])
    assert '--from installs one archive' in capsys.readouterr().err


def test_urls_say_where_to_fetch_each_asset_by_hand(capsys):
    assert download.main(['--urls', 'hg2d3-cab', 'data_2d']) == 0
    out = capsys.readouterr().out
    assert 'id=%s' % ASSET.drive_id in out and 'hg2d3-cab --from FILE' in out
    assert 'data_2d --from FILE' in out and '490 MB' in out


@pytest.mark.parametrize('url', ['http://face-align-test.invalid/uc', 'closed-port'])
def test_an_unreachable_server_is_said_at_once_with_the_way_round_it(url, tmp_path):
    import socket
    import time
    if url == 'closed-port':
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            url = 'http://127.0.0.1:%d/uc' % sock.getsockname()[1]
    started = time.time()
    with pytest.raises(download.Unreachable) as err:
        download.download(ASSET, root=str(tmp_path), base_url=url, progress=False, backoff=5)
    assert time.time() - started < 5                       # no retries with backoff
    text = str(err.value)
    assert 'cannot reach' in text and 'offline or air-gapped' in text
    assert '--urls hg2d3-cab' in text and 'hg2d3-cab --from FILE' in text
    assert not list(tmp_path.rglob('*.part'))
