"""mmdyn.apis.images: the folder search of tools/predict.py."""
import pytest


def test_find_images(tmp_path):
    from mmdyn.apis import find_images
    root = tmp_path / 'imgs'
    (root / 'sub').mkdir(parents=True)
    for name in ('b.png', 'a.JPG', 'notes.txt', 'sub/c.jpeg'):
        (root / name).write_bytes(b'x')
    (tmp_path / 'single.data').write_bytes(b'x')
    found = find_images([str(root), str(tmp_path / 'single.data')])
    assert [n for _, n in found] == ['imgs/a.JPG', 'imgs/b.png', 'imgs/sub/c.jpeg',
                                     'single.data']
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no image .* found in folder .*empty'):
        find_images([str(tmp_path / 'empty')])
    with pytest.raises(FileNotFoundError, match='input not found: .*ghost'):
        find_images([str(tmp_path / 'ghost')])
