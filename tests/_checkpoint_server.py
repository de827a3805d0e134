"""Test helpers for checkpoints served over HTTP: a threaded ``http.server`` on
127.0.0.1 (bounded in time) and a checkpoint whose pickle would create a marker
file when unpickled without the weights-only allow-list."""
import contextlib
import functools
import os
import os.path as osp
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import torch


class MarkerPayload:
    """Unpickled without restrictions, this creates (opens for writing) the
    file ``marker``: the stand-in for arbitrary code in a checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def save_evil_checkpoint(path, marker, state_dict=None):
    """A checkpoint with a real ``state_dict`` (so only the payload makes it
    unsafe) and :class:`MarkerPayload` in its ``meta``."""
    state_dict = state_dict if state_dict is not None else {'w': torch.zeros(2)}
    torch.save({'state_dict': state_dict, 'meta': {'note': MarkerPayload(marker)}}, str(path))
    return str(path)


class _QuietHandler(SimpleHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold a server thread for long

    def log_message(self, format, *args):  # noqa: A002 (base class name)
        self.server.requests.append(self.path)


@contextlib.contextmanager
def serve_directory(root, timeout=30.0):
    """Serve ``root`` on 127.0.0.1 (a free port) in a daemon thread; yields
    ``SimpleNamespace(url, requests)`` (``requests``: the paths requested).
    Client sockets get a default timeout of ``timeout`` seconds meanwhile."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.daemon_threads = True
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05),
                              daemon=True)
    thread.start()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        yield SimpleNamespace(url=f'http://127.0.0.1:{server.server_address[1]}',
                              requests=server.requests, root=str(root))
    finally:
        socket.setdefaulttimeout(previous)
        server.shutdown()
        server.server_close()
        thread.join(timeout)


def isolate_caches(tmp_path, monkeypatch):
    """Point torch hub and MMEngine caches at ``tmp_path`` (nothing touches
    ~/.cache); return the hub checkpoint directory."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine_home'))
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg_cache'))
    monkeypatch.setattr(torch.hub, '_hub_dir', None)
    os.makedirs(tmp_path / 'mmengine_home', exist_ok=True)
    return osp.join(str(tmp_path / 'torch_home'), 'hub', 'checkpoints')
