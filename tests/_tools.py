"""The one tool loader of the suite: ``from _tools import import_tool, tool_path``
(``tests/`` is on ``sys.path``; named apart from the ``conftest`` modules, which
pytest imports under one module name per folder)."""
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL_DIRS = ('', 'analysis_tools', 'deploy', 'model_converters')


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
