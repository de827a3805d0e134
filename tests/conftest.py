"""Suite-wide fixtures: the one tool loader (``load_tool``; as plain functions
``from _tools import import_tool, tool_path``) and the reset of MMEngine's default
scope after each test."""
import pytest
from _tools import import_tool

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


@pytest.fixture
def load_tool():
    """``load_tool('train')`` -> the tool script as a fresh module (the one tool
    loader of the suite; :func:`import_tool`)."""
    return import_tool
