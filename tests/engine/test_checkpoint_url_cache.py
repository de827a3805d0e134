"""The http(s) checkpoint cache is keyed by the whole URL (issue 17, section 2):
two URLs with the same file name give their own weights, a downloaded legacy
archive's member never replaces another URL's cached file (nor the archive),
every cached load is the weights-only load again, and a URL without a file name
(ending in ``/..``) is one clear line. URLs are served by a local http.server."""
import io
import os
import os.path as osp
import zipfile

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

import mmdyn.models  # noqa: F401  (installs the safe loaders)
from _checkpoint_server import isolate_caches, save_evil_checkpoint, serve_directory
from mmdyn.engine import (CheckpointError, CheckpointSourceError, UnsafeCheckpointError,
                          load_checkpoint_url, url_cache_path)


def _weights(value):
    return {'state_dict': {'fc.weight': torch.full((2, 3), float(value))}}


def _value(ckpt):
    return float(ckpt['state_dict']['fc.weight'][0, 0])


def _legacy_zip(path, member, value):
    """A pre-1.6 (non-zip) checkpoint zipped by hand as the single ``member``."""
    buffer = io.BytesIO()
    torch.save(_weights(value), buffer, _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr(member, buffer.getvalue())


@pytest.fixture
def site(tmp_path, monkeypatch):
    hub = isolate_caches(tmp_path, monkeypatch)
    root = tmp_path / 'www'
    for folder in ('a', 'b', 'c'):
        (root / folder).mkdir(parents=True)
    with serve_directory(root) as server:
        server.hub = hub
        server.tmp = tmp_path
        yield server


def test_same_file_name_under_two_urls_gives_each_its_own_weights(site):
    torch.save(_weights(1), osp.join(site.root, 'a', 'model.pth'))
    torch.save(_weights(2), osp.join(site.root, 'b', 'model.pth'))
    url_a, url_b = f'{site.url}/a/model.pth', f'{site.url}/b/model.pth'
    assert _value(load_checkpoint_url(url_a)) == 1
    assert _value(load_checkpoint_url(url_b)) == 2  # was 1: the cache of a/model.pth
    assert _value(CheckpointLoader.load_checkpoint(url_b)) == 2
    cached_a, cached_b = url_cache_path(url_a), url_cache_path(url_b)
    assert cached_a != cached_b and osp.basename(cached_a) == osp.basename(cached_b) == 'model.pth'
    assert osp.isfile(cached_a) and osp.isfile(cached_b)
    assert osp.commonpath([cached_a, site.hub]) == site.hub
    # Served no more: both come from their own cached file.
    os.remove(osp.join(site.root, 'a', 'model.pth'))
    os.remove(osp.join(site.root, 'b', 'model.pth'))
    assert _value(load_checkpoint_url(url_b)) == 2 and _value(load_checkpoint_url(url_a)) == 1
    assert site.requests.count('/a/model.pth') == 1 and site.requests.count('/b/model.pth') == 1


def test_an_archive_member_never_replaces_another_urls_file(site):
    """A single-member legacy zip is extracted inside its own URL's folder: its
    member ``model.pth`` replaces neither ``a/model.pth``'s cached file nor the
    archive (also named model.pth)."""
    torch.save(_weights(1), osp.join(site.root, 'a', 'model.pth'))
    _legacy_zip(osp.join(site.root, 'c', 'pack.zip'), 'model.pth', 3)
    _legacy_zip(osp.join(site.root, 'b', 'model.pth'), 'model.pth', 4)
    url_a = f'{site.url}/a/model.pth'
    assert _value(load_checkpoint_url(url_a)) == 1
    assert _value(load_checkpoint_url(f'{site.url}/c/pack.zip')) == 3
    assert _value(load_checkpoint_url(f'{site.url}/b/model.pth')) == 4
    assert _value(load_checkpoint_url(url_a)) == 1  # was 3, then 4: overwritten
    assert zipfile.is_zipfile(url_cache_path(f'{site.url}/b/model.pth'))  # archive kept
    for name in ('a', 'b', 'c'):
        for path in os.listdir(osp.join(site.root, name)):
            os.remove(osp.join(site.root, name, path))
    assert _value(load_checkpoint_url(f'{site.url}/b/model.pth')) == 4
    assert _value(load_checkpoint_url(f'{site.url}/c/pack.zip')) == 3
    assert _value(load_checkpoint_url(url_a)) == 1


def test_every_cached_load_is_the_weights_only_load(site):
    """An unsafe file in a URL's cache folder (put there by anything) is refused on
    every load, and no download replaces it silently."""
    url = f'{site.url}/a/model.pth'
    cached = url_cache_path(url)
    os.makedirs(osp.dirname(cached))
    marker = site.tmp / 'PWNED'
    save_evil_checkpoint(cached, marker)
    for _ in range(2):
        with pytest.raises(UnsafeCheckpointError, match=r'model\.pth.*downloaded from'):
            load_checkpoint_url(url)
    assert not marker.exists() and '/a/model.pth' not in site.requests


def test_the_cache_key_is_the_normalised_whole_url(tmp_path):
    base = url_cache_path('http://example.org/a/model.pth', str(tmp_path))
    for same in ('HTTP://Example.ORG:80/a/model.pth', 'http://example.org/a/model.pth#x'):
        assert url_cache_path(same, str(tmp_path)) == base
    for other in ('https://example.org/a/model.pth', 'http://example.org:8080/a/model.pth',
                  'http://example.org/A/model.pth', 'http://example.org/a/model.pth?v=2',
                  'http://other.org/a/model.pth'):
        path = url_cache_path(other, str(tmp_path))
        assert path != base and osp.basename(path) == 'model.pth'
    assert osp.basename(url_cache_path('http://example.org/a/model.pth', str(tmp_path),
                                       file_name='r18.pth')) == 'r18.pth'


@pytest.mark.parametrize('tail', ['a/..', 'a/.', 'a/'])
def test_a_url_without_a_file_name_is_one_clear_line(site, tail):
    url = f'{site.url}/{tail}'
    for load in (load_checkpoint_url, CheckpointLoader.load_checkpoint):
        with pytest.raises(CheckpointSourceError) as info:
            load(url)
        message = str(info.value)
        assert isinstance(info.value, (ValueError, CheckpointError))
        assert message.startswith(f'checkpoint URL {url} has no file name') and '\n' not in message
    assert not any(r.startswith('/a') for r in site.requests)  # nothing downloaded
