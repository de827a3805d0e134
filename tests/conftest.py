"""Suite-wide fixtures: the one tool loader (``load_tool`` / ``import_tool``) and the
reset of MMEngine's default scope after each test."""
import os.path as osp

import pytest

try:
    from mmengine.registry import DefaultScope
    _INITIAL_SCOPES = set(DefaultScope._instance_dict)
except ImportError:  # the torch-only tests run without mmengine
    DefaultScope = None


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Tools and helpers call ``init_default_scope`` (a process-global MMEngine
    DefaultScope that every later ``Registry.build`` follows); drop every scope
    created since the session started after each test, so that the next test
    builds from the registry it names, not from an earlier test's scope."""
    yield
    if DefaultScope is not None:
        for name in list(DefaultScope._instance_dict):
            if name not in _INITIAL_SCOPES:
                del DefaultScope._instance_dict[name]


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL_DIRS = ('', 'analysis_tools', 'deploy', 'model_converters', 'misc')


def tool_path(name: str) -> str:
    """Path of the tool script ``name``: ``'train'``, ``'get_flops'`` (searched in
    ``tools/`` and its sub-folders) or a relative ``'analysis_tools/get_flops'``."""
    name = name[:-3] if name.endswith('.py') else name
    candidates = [osp.join(REPO, 'tools', f'{name}.py')] if '/' in name else [
        osp.join(REPO, 'tools', sub, f'{name}.py') for sub in TOOL_DIRS]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'no tool {name!r} under tools/ (looked at {candidates})')


def import_tool(name: str):
    """The tool script ``name`` (see :func:`tool_path`) as a fresh module object,
    loaded from its file (``test`` would clash with the standard library's
    ``test`` package if imported by name)."""
    import importlib.util
    path = tool_path(name)
    spec = importlib.util.spec_from_file_location(
        f'_mmdyn_tool_{name.replace("/", "_")}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_tool():
    """``load_tool('train')`` -> the tool script as a fresh module (the one tool
    loader of the suite; :func:`import_tool`)."""
    return import_tool
