"""``make_shapes_coco`` writes only into a new or empty folder or one it made
itself (its manifest), and refuses anything else naming a file it did not
create (issue 17, section 1)."""
import json

import pytest

from mmdyn.datasets import make_shapes_coco
from mmdyn.datasets.synthetic_coco import MANIFEST, ShapesCocoRootError

SMALL = dict(num_train=2, num_val=1, size=32)


def test_folder_with_other_files_is_refused_and_untouched(tmp_path):
    (tmp_path / 'annotations').mkdir()
    mine = tmp_path / 'annotations' / 'instances_train.json'
    mine.write_text('{"my": "annotations"}')
    (tmp_path / 'notes.txt').write_text('keep me')
    with pytest.raises(ShapesCocoRootError, match='instances_train.json|notes.txt') as info:
        make_shapes_coco(str(tmp_path), **SMALL)
    assert '\n' not in str(info.value) and 'not empty' in str(info.value)
    assert mine.read_text() == '{"my": "annotations"}'
    assert (tmp_path / 'notes.txt').read_text() == 'keep me'
    assert sorted(p.name for p in tmp_path.rglob('*')) == [
        'annotations', 'instances_train.json', 'notes.txt']


def test_own_folder_is_regenerated_and_foreign_files_in_it_are_refused(tmp_path):
    root = tmp_path / 'shapes'
    info = make_shapes_coco(str(root), **SMALL)
    manifest = json.loads((root / MANIFEST).read_text())
    assert 'train/000000.png' in manifest['files'] and manifest['spec']['num_train'] == 2
    train = (root / 'annotations' / 'instances_train.json').read_bytes()
    assert make_shapes_coco(str(root), **SMALL) == info  # same arguments: nothing to do
    assert (root / 'annotations' / 'instances_train.json').read_bytes() == train
    make_shapes_coco(str(root), **dict(SMALL, seed=5))  # other arguments: regenerated
    assert (root / 'annotations' / 'instances_train.json').read_bytes() != train
    # A file the user put where a new image would go is not replaced.
    (root / 'train' / '000003.png').write_bytes(b'user image')
    with pytest.raises(ShapesCocoRootError, match='000003.png was not created by'):
        make_shapes_coco(str(root), **dict(SMALL, num_train=4))
    assert (root / 'train' / '000003.png').read_bytes() == b'user image'


def test_a_root_that_is_a_file_or_a_foreign_manifest_is_refused(tmp_path):
    (tmp_path / 'f').write_text('x')
    with pytest.raises(ShapesCocoRootError, match='is a file'):
        make_shapes_coco(str(tmp_path / 'f'), **SMALL)
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / MANIFEST).write_text('{"files": []}')
    with pytest.raises(ShapesCocoRootError, match='is not a manifest of make_shapes_coco'):
        make_shapes_coco(str(tmp_path / 'd'), **SMALL)


def test_empty_folder_is_used(tmp_path):
    (tmp_path / 'train').mkdir()  # empty folders hold no file to lose
    info = make_shapes_coco(str(tmp_path), **SMALL)
    assert json.loads(open(info['val_ann']).read())['images']
