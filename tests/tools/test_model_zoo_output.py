"""Output path of tools/analysis_tools/model_zoo.py (issue 17, section 1): it
never writes over a file it did not write (a config, a document), and its
default output is under the current folder, not inside the source tree."""
import pytest

from _tools import import_tool

# The smallest config of the index: one model built, parameters only.
FILTER = 'mobilenet-v2-w0.5-a2d2c-4x_8xb16_cifar100'


@pytest.fixture
def tool():
    return import_tool('analysis_tools/model_zoo')


@pytest.mark.parametrize('which', ['config', 'document'])
def test_existing_file_that_is_not_a_table_is_refused(tool, tmp_path, capsys, which):
    if which == 'config':  # a copy of a config, and a config of the index itself
        out = tmp_path / 'my_config.py'
        out.write_text("_base_ = ['x.py']\n")
    else:
        out = tmp_path / 'model_zoo.md'
        out.write_text('# Model zoo\n\nprose\n')
    before = out.read_bytes()
    with pytest.raises(SystemExit) as info:
        tool.main(['--out', str(out), '--no-madds', '--filter', FILTER])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f'--out {out} exists and was not written by this tool' in err
    assert out.read_bytes() == before


def test_a_config_of_the_index_is_refused_as_an_input(tool, capsys):
    config = tool.list_configs(FILTER)[0]
    before = open(config, 'rb').read()
    with pytest.raises(SystemExit):
        tool.main(['--out', config, '--no-madds', '--filter', FILTER])
    assert 'is one of the input files' in capsys.readouterr().err
    assert open(config, 'rb').read() == before


def test_default_output_is_under_the_current_folder_and_replaces_a_previous_table(
        tool, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / 'outputs' / 'model_zoo_table.md'
    out.parent.mkdir()
    out.write_text(tool.MARKER + '\nold table\n')  # a previous table of the tool
    tool.main(['--no-madds', '--filter', FILTER])
    text = out.read_text()
    assert text.splitlines()[0] == tool.MARKER and FILTER in text and 'old table' not in text
