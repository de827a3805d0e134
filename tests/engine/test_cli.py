"""The command-line pieces the tools share (mmdyn.engine.cli)."""
import argparse

import sys

import pytest

from mmdyn.engine import cli


def _parser():
    parser = argparse.ArgumentParser(prog='tool')
    cli.add_config_options(parser)
    cli.add_device_option(parser)
    cli.add_partial_checkpoint_option(parser)
    cli.add_launcher_options(parser)
    return parser


def test_options_and_defaults():
    args = _parser().parse_args([])
    assert args.cfg_options is None and args.device == 'cpu'
    assert args.allow_partial_checkpoint is False
    assert args.launcher == 'none' and args.local_rank == 0
    args = _parser().parse_args(['--cfg-options', 'a=1', 'b.c=[1,2]', '--device', 'cuda:1',
                                 '--allow-partial-checkpoint', '--launcher', 'pytorch',
                                 '--local-rank', '3'])
    assert args.cfg_options == {'a': 1, 'b.c': [1, 2]} and args.device == 'cuda:1'
    assert args.allow_partial_checkpoint and args.launcher == 'pytorch'
    assert args.local_rank == 3
    assert _parser().parse_args(['--local_rank', '2']).local_rank == 2


def test_partial_checkpoint_help_can_be_replaced():
    parser = argparse.ArgumentParser()
    cli.add_partial_checkpoint_option(parser, help='own words')
    assert 'own words' in parser.format_help()


def test_apply_local_rank_keeps_a_launcher_value(monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    cli.apply_local_rank(argparse.Namespace(local_rank=2))
    assert cli.os.environ['LOCAL_RANK'] == '2'
    cli.apply_local_rank(argparse.Namespace(local_rank=5))
    assert cli.os.environ['LOCAL_RANK'] == '2'


def test_path_checks(tmp_path, capsys):
    parser = _parser()
    existing = tmp_path / 'a.py'
    existing.write_text('')
    cli.check_config_path(parser, str(existing))
    cli.check_checkpoint_path(parser, str(existing))
    cli.check_checkpoint_path(parser, 'https://example.org/w.pth')  # checked by the loader
    missing = str(tmp_path / 'missing.pth')
    for check, args, message in (
            (cli.check_config_path, (missing, ), f'config file not found: {missing}'),
            (cli.check_checkpoint_path, (missing, ), f'checkpoint file not found: {missing}'),
            (cli.check_checkpoint_path, ('https://x/w.pth', False),
             'checkpoint file not found: https://x/w.pth')):
        with pytest.raises(SystemExit) as exc:
            check(parser, *args)
        assert exc.value.code == 2
        assert capsys.readouterr().err.strip().endswith(f'error: {message}')


# ------------------------------------------------------------- --cfg-options parsing
@pytest.mark.parametrize('item, reason', [
    ("custom_hooks=[dict(type='X',a=-1)]", 'dict(...) and other calls are not understood'),
    ('model.backbone=dict(depth=50,num_stages=4)', 'dict(...) and other calls are not understood'),
    ('a=[1,2', 'Imbalanced brackets'),
    ('foo', 'expected KEY=VALUE'),
    ('=3', 'expected KEY=VALUE'),
], ids=['dict-in-list', 'dict', 'unbalanced', 'no-equals', 'no-key'])
def test_unparsable_cfg_options_are_one_line_naming_them(item, reason, capsys):
    """MMEngine's DictAction recursed without end on dict(...) (RecursionError),
    asserted on brackets and raised a ValueError traceback without '='."""
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(['--cfg-options', 'ok=1', item])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f'tool: error: --cfg-options {item!r}' if '=' not in item
                              or item.startswith('=') else f'tool: error: --cfg-options {item}:')
    assert reason in err[-1] and 'Traceback' not in '\n'.join(err)


def test_cfg_option_values_keep_mmengine_syntax_and_inner_spaces():
    args = _parser().parse_args([
        '--cfg-options', 'data_root=/data/my set/', "name='a b'", 'n=3', 'x=1.5', 'f=false',
        'z=None', 't=(1,2)', 'l=[a,[1,2]]', 'url=http://h/a=b'])
    assert args.cfg_options == {'data_root': '/data/my set/', 'name': 'a b', 'n': 3, 'x': 1.5,
                                'f': False, 'z': None, 't': (1, 2), 'l': ['a', [1, 2]],
                                'url': 'http://h/a=b'}
    # repeated options accumulate, a later key wins
    args = _parser().parse_args(['--cfg-options', 'a=1', '--cfg-options', 'a=2', 'b=3'])
    assert args.cfg_options == {'a': 2, 'b': 3}


# ------------------------------------------------------------------------ --work-dir
def test_why_not_writable_dir(tmp_path):
    """Not creatable or not writable: the reason names the path (also for root,
    who passes every permission check: the probe really creates an entry)."""
    a_file = tmp_path / 'file'
    a_file.write_text('')
    assert cli.why_not_writable_dir(str(a_file)) == 'it is a file'
    assert cli.why_not_writable_dir(str(a_file / 'sub')) == f'{a_file} is a file, not a folder'
    assert cli.why_not_writable_dir('/proc/mmdyn-work').startswith(
        '/proc does not accept new folders (')
    assert cli.why_not_writable_dir(str(tmp_path / 'new' / 'deeper')) is None  # creatable
    assert cli.why_not_writable_dir(str(tmp_path)) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ['file']  # the probes left nothing


# ------------------------------------------------------------------ cli.run, --debug
def _tool_main(exc=None, code=None):
    def main(argv):
        parser = argparse.ArgumentParser(prog='tool')
        cli.add_debug_option(parser)
        parser.add_argument('rest', nargs='*')
        parser.parse_args(argv)
        if exc is not None:
            raise exc
        return code
    return main


def _clear_errors():
    import pickle

    from mmdyn.engine import CheckpointMismatchError, UnsafeCheckpointError
    from mmdyn.utils.output_paths import OutputPathError
    errors = [ValueError('bad value'), RuntimeError('bad run'),
              FileNotFoundError('--resume checkpoint not found: x.pth'),
              pickle.UnpicklingError('invalid load key'),
              UnsafeCheckpointError('checkpoint x.pth needs more than weights'),
              CheckpointMismatchError('checkpoint x.pth does not match the model'),
              OutputPathError('--out x is the config')]
    try:
        from mmdyn.utils.checkpoint_errors import CheckpointError
    except ImportError:
        pass
    else:
        errors.append(type('SomeCheckpointError', (CheckpointError, ), {})('ckpt x is odd'))
    return errors


def test_run_prints_clear_errors_as_one_line(capfd):
    for err in _clear_errors():
        with pytest.raises(SystemExit) as exc:
            cli.run(_tool_main(err), [])
        assert exc.value.code == 1
        out, stderr = capfd.readouterr()
        assert stderr == f'error: {err}\n' and out == ''
    with pytest.raises(SystemExit) as exc:  # OSError: the file and the reason, no [Errno N]
        cli.run(_tool_main(PermissionError(13, 'Permission denied', '/x/y')), [])
    assert capfd.readouterr().err == 'error: /x/y: Permission denied\n'


def test_run_with_debug_raises_for_the_traceback():
    for err in _clear_errors():
        with pytest.raises(type(err)):
            cli.run(_tool_main(err), ['a', '--debug'])
    with pytest.raises(SystemExit) as exc:  # after '--' it is an argument, not the flag
        cli.run(_tool_main(ValueError('x')), ['--', '--debug'])
    assert exc.value.code == 1


def test_debug_shows_the_traceback_of_a_refusal_the_tool_caught(capfd):
    def main(argv):
        try:
            raise ValueError('the clear reason')
        except ValueError as err:
            sys.exit(f'error: {err}')

    for argv, traceback_shown in (([], False), (['--debug'], True)):
        with pytest.raises(SystemExit) as exc:
            cli.run(main, argv)
        assert exc.value.code == 'error: the clear reason'
        err = capfd.readouterr().err
        assert ('Traceback' in err and 'ValueError: the clear reason' in err) == traceback_shown


@pytest.mark.parametrize('ending', ['return', 'error'])
def test_run_destroys_the_process_group_of_a_distributed_run(tmp_path, ending):
    """A gloo group left to the interpreter's shutdown can abort a rank after its work
    (SIGABRT, seen in tools/dist_test.sh): ``run`` destroys it on every exit."""
    import torch.distributed as dist

    def main(argv):
        dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0,
                                world_size=1)
        assert dist.is_initialized()
        if ending == 'error':
            raise ValueError('refused')

    with pytest.raises(SystemExit):
        cli.run(main, [])
    assert not dist.is_initialized()


def test_run_exit_codes_and_what_passes_through(capfd):
    for code, expected in ((None, 0), (0, 0), (3, 3), ({'acc': 1}, 0), (True, 0)):
        with pytest.raises(SystemExit) as exc:
            cli.run(_tool_main(code=code), [])
        assert exc.value.code == expected
    with pytest.raises(SystemExit) as exc:
        cli.run(_tool_main(KeyboardInterrupt()), [])
    assert exc.value.code == 130 and capfd.readouterr().err == 'error: interrupted\n'
    with pytest.raises(KeyError):  # a bug keeps its traceback
        cli.run(_tool_main(KeyError('x')), [])
    with pytest.raises(SystemExit) as exc:  # parser.error / sys.exit pass unchanged
        cli.run(_tool_main(), ['--no-such-flag'])
    assert exc.value.code == 2
