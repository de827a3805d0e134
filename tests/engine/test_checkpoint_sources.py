"""Every checkpoint source MMEngine 0.10.7 accepts ends in mmdyn's weights-only
allow-list load: local files, http(s) URLs (downloaded into the torch hub cache,
the cached copy loaded the same way), the prefixes MMEngine maps to URLs
(torchvision://, modelzoo://, open-mmlab://, openmmlab://, mmcls://), pavi://,
s3:// / petrel:// and schemes registered after mmdyn was imported. A checkpoint
whose pickle would create a marker file is refused (naming the global) and the
marker never appears; a good one loads. The URLs are served by a local
http.server on 127.0.0.1."""
import io
import json
import os
import os.path as osp
import shutil
import sys
import types

import pytest
import torch
import torch.nn as nn
from mmengine.runner import checkpoint as mm_ckpt
from mmengine.runner.checkpoint import CheckpointLoader

import mmdyn.models  # noqa: F401  (installs the safe loaders)
from _checkpoint_server import (MarkerPayload, isolate_caches, save_evil_checkpoint,
                                serve_directory)
from mmdyn.engine import UnsafeCheckpointError, load_checkpoint_url, url_cache_path
from mmdyn.engine.checkpoint import safe_checkpoint_schemes

GOOD = {'backbone.fc.weight': torch.arange(6.).view(2, 3), 'backbone.fc.bias': torch.ones(2)}


@pytest.fixture
def site(tmp_path, monkeypatch):
    """good.pth / evil.pth served on 127.0.0.1; caches under tmp_path."""
    hub = isolate_caches(tmp_path, monkeypatch)
    root = tmp_path / 'www'
    root.mkdir()
    torch.save({'state_dict': GOOD, 'meta': {'epoch': 3}}, root / 'good.pth')
    marker = tmp_path / 'PWNED'
    save_evil_checkpoint(root / 'evil.pth', marker, GOOD)
    with serve_directory(root) as server:
        server.hub = hub
        server.marker = marker
        server.tmp = tmp_path
        yield server
    assert not marker.exists(), 'the checkpoint payload ran'


def test_payload_really_runs_without_the_allow_list(tmp_path):
    """The evil checkpoint is evil: unrestricted unpickling creates the marker
    (so the refusals below are meaningful)."""
    marker = tmp_path / 'ran'
    path = save_evil_checkpoint(tmp_path / 'evil.pth', marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_every_registered_scheme_is_covered():
    schemes = safe_checkpoint_schemes()
    for prefix in ('', 'http://', 'https://', 'torchvision://', 'modelzoo://', 'open-mmlab://',
                   'openmmlab://', 'mmcls://', 'pavi://', r'(\S+\:)?s3://',
                   r'(\S+\:)?petrel://'):
        assert prefix in schemes, prefix
    assert 'UNSAFE' not in schemes.values(), schemes
    assert schemes[''] == schemes['http://'] == schemes['https://'] == 'weights-only'
    # MMEngine's own functions that its other loaders call by name are replaced too.
    assert getattr(mm_ckpt.load_from_http, '_mmdyn_safe', False)
    assert getattr(mm_ckpt.load_from_local, '_mmdyn_safe', False)


def _check_good(ckpt):
    state = ckpt['state_dict'] if 'state_dict' in ckpt else ckpt
    for key in ('fc.weight', 'fc.bias'):
        got = state.get('backbone.' + key, state.get(key))
        torch.testing.assert_close(got, GOOD['backbone.' + key])


def _setup_scheme(scheme, site, monkeypatch):
    """Return ``{'good': source, 'evil': source}`` for ``scheme``."""
    url = site.url
    if scheme == 'http':
        return {k: f'{url}/{k}.pth' for k in ('good', 'evil')}
    if scheme in ('torchvision', 'modelzoo'):
        urls = {f'mmdyn_{k}': f'{url}/{k}.pth' for k in ('good', 'evil')}
        monkeypatch.setattr(mm_ckpt, 'get_torchvision_models', lambda: urls)
        return {k: f'{scheme}://mmdyn_{k}' for k in ('good', 'evil')}
    if scheme in ('open-mmlab', 'openmmlab'):
        home = os.environ['MMENGINE_HOME']
        with open(osp.join(home, 'open_mmlab.json'), 'w') as f:
            json.dump({f'mmdyn_{k}': f'{url}/{k}.pth' for k in ('good', 'evil')}, f)
        return {k: f'{scheme}://mmdyn_{k}' for k in ('good', 'evil')}
    if scheme == 'open-mmlab-local':  # a model-zoo entry naming a file in MMENGINE_HOME
        home = os.environ['MMENGINE_HOME']
        for k in ('good', 'evil'):
            shutil.copy(osp.join(site.root, f'{k}.pth'), osp.join(home, f'local_{k}.pth'))
        with open(osp.join(home, 'open_mmlab.json'), 'w') as f:
            json.dump({f'mmdyn_{k}': f'local_{k}.pth' for k in ('good', 'evil')}, f)
        return {k: f'open-mmlab://mmdyn_{k}' for k in ('good', 'evil')}
    if scheme == 'mmcls':
        urls = {f'mmdyn_{k}': f'{url}/{k}.pth' for k in ('good', 'evil')}
        monkeypatch.setattr(mm_ckpt, 'get_mmcls_models', lambda: urls)
        return {k: f'mmcls://mmdyn_{k}' for k in ('good', 'evil')}
    if scheme in ('s3', 'petrel'):
        class FakeBackend:  # object storage holding the served files
            def get(self, filepath):
                with open(osp.join(site.root, osp.basename(filepath)), 'rb') as f:
                    return f.read()
        monkeypatch.setattr(mm_ckpt, 'get_file_backend', lambda *a, **k: FakeBackend())
        return {k: f'{scheme}://bucket/{k}.pth' for k in ('good', 'evil')}
    if scheme == 'pavi':
        class Model:
            def __init__(self, path):
                self.name = osp.basename(path)
                self.path = path

            def download(self, dst):
                shutil.copy(osp.join(site.root, self.name), dst)

        pavi = types.ModuleType('pavi')
        pavi.modelcloud = types.SimpleNamespace(get=Model)
        monkeypatch.setitem(sys.modules, 'pavi', pavi)
        return {k: f'pavi://project/{k}.pth' for k in ('good', 'evil')}
    raise AssertionError(scheme)


SCHEMES = ['http', 'torchvision', 'modelzoo', 'open-mmlab', 'openmmlab', 'open-mmlab-local',
           'mmcls', 's3', 'petrel', 'pavi']


@pytest.mark.parametrize('scheme', SCHEMES)
def test_scheme_loads_good_and_refuses_evil(site, scheme, monkeypatch):
    sources = _setup_scheme(scheme, site, monkeypatch)
    _check_good(CheckpointLoader.load_checkpoint(sources['good'], map_location='cpu'))
    with pytest.raises(UnsafeCheckpointError, match=r'refusing to load .*(io|builtins)\.open'):
        CheckpointLoader.load_checkpoint(sources['evil'], map_location='cpu')
    # The public entry point (what init_cfg Pretrained, init_detector, ... call).
    model = nn.Module()
    model.fc = nn.Linear(3, 2)
    with pytest.raises(UnsafeCheckpointError):
        mm_ckpt.load_checkpoint(model, sources['evil'], revise_keys=[(r'^backbone\.', '')])
    assert not site.marker.exists()


def test_http_downloads_go_to_the_hub_cache_and_the_cache_is_loaded_safely(site):
    good, evil = f'{site.url}/good.pth', f'{site.url}/evil.pth'
    _check_good(CheckpointLoader.load_checkpoint(good))
    # Cached in the hub cache, one folder per URL (tests/engine/test_checkpoint_url_cache.py).
    assert url_cache_path(good).startswith(site.hub + os.sep)
    assert osp.isfile(url_cache_path(good))
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth.*downloaded from http://127'):
        CheckpointLoader.load_checkpoint(evil)
    assert osp.isfile(url_cache_path(evil))
    assert site.requests.count('/evil.pth') == 1
    # The server no longer has the files: the second calls read the cache ...
    os.remove(osp.join(site.root, 'good.pth'))
    os.remove(osp.join(site.root, 'evil.pth'))
    _check_good(CheckpointLoader.load_checkpoint(good))
    # ... and the cached evil copy is refused again, not trusted.
    with pytest.raises(UnsafeCheckpointError, match='not allow-listed'):
        CheckpointLoader.load_checkpoint(evil)
    assert site.requests.count('/evil.pth') == 1 and site.requests.count('/good.pth') == 1


def test_a_file_already_in_the_hub_cache_is_refused(site):
    """A copy already in the URL's cache folder (put there by another program)
    is not trusted either; no download happens."""
    cached = url_cache_path(f'{site.url}/other.pth')
    os.makedirs(osp.dirname(cached), exist_ok=True)
    save_evil_checkpoint(cached, site.marker)
    with pytest.raises(UnsafeCheckpointError, match='other.pth'):
        CheckpointLoader.load_checkpoint(f'{site.url}/other.pth')
    assert '/other.pth' not in site.requests


def test_schemes_registered_later_are_covered(site):
    """A loader registered after mmdyn's import (however registered) runs with
    torch.load forced to the weights-only load, also torch.hub's
    load_state_dict_from_url (weights_only=False by default)."""
    evil_path = osp.join(site.root, 'evil.pth')

    def load_from_plain(filename, map_location=None):
        return torch.load(evil_path, map_location=map_location, weights_only=False)

    def load_from_hub(filename, map_location=None):
        return torch.hub.load_state_dict_from_url(f'{site.url}/evil.pth', map_location=map_location)

    original = torch.load
    pavi = CheckpointLoader._schemes['pavi://']
    try:
        CheckpointLoader.register_scheme('mmdyntest://', loader=load_from_plain)
        CheckpointLoader._schemes['pavi://'] = load_from_hub  # replaced by hand
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            CheckpointLoader.load_checkpoint('mmdyntest://x')
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            CheckpointLoader.load_checkpoint('pavi://x')
        assert safe_checkpoint_schemes()['mmdyntest://'] == 'guarded'
    finally:
        CheckpointLoader._schemes.pop('mmdyntest://', None)
        CheckpointLoader._schemes['pavi://'] = pavi
    assert torch.load is original  # the guard is temporary
    # Outside a checkpoint loader torch.load is untouched (weights_only=False works).
    ok = site.tmp / 'plain.pth'
    torch.save({'x': 1}, ok)
    assert torch.load(ok, weights_only=False) == {'x': 1}


def test_url_errors_are_clear(site):
    with pytest.raises(RuntimeError, match=r'could not download checkpoint .*missing\.pth'):
        load_checkpoint_url(f'{site.url}/missing.pth')
    with pytest.raises(ValueError, match='no file name'):
        load_checkpoint_url(f'{site.url}/')
    broken = osp.join(site.root, 'broken.pth')
    with open(broken, 'wb') as f:
        f.write(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='corrupt'):
        load_checkpoint_url(f'{site.url}/broken.pth')


def test_runner_load_from_url(site, tmp_path):
    """``load_from = URL`` in a Runner (what tools/test.py and configs use)."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Module()
            self.backbone.fc = nn.Linear(3, 2)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.backbone.fc(inputs)

    for name, ok in (('good', True), ('evil', False)):
        runner = Runner(model=Toy(), work_dir=str(tmp_path / name),
                        load_from=f'{site.url}/{name}.pth', default_scope=None,
                        experiment_name=f'load_from_{name}_{id(site)}')
        if ok:
            runner.load_or_resume()
            torch.testing.assert_close(runner.model.backbone.fc.weight,
                                       GOOD['backbone.fc.weight'])
        else:
            with pytest.raises(UnsafeCheckpointError):
                runner.load_or_resume()


def test_in_memory_stream_is_checked_too():
    from mmdyn.engine import load_checkpoint_bytes
    buffer = io.BytesIO()
    torch.save({'m': MarkerPayload('/nonexistent/should/not/exist')}, buffer)
    with pytest.raises(UnsafeCheckpointError, match='s3://b/x.pth'):
        load_checkpoint_bytes(buffer.getvalue(), 's3://b/x.pth')
