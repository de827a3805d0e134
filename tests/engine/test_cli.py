"""The command-line pieces the tools share (mmdyn.engine.cli)."""
import argparse

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
