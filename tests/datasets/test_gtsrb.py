"""GTSRB: the official CSV/.ppm layout, the split by track, the ROI crop, the errors."""
import os
import os.path as osp
import re
from collections import Counter, defaultdict

import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile

from mmdyn.datasets.checks import LAYOUTS
from mmdyn.datasets.classification import GTSRB, GTSRB_CLASSES, CropROI
from mmdyn.datasets.gtsrb import split_tracks


def infos(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def by_path(records):
    return {r['path']: r for r in records}


# ----------------------------------------------------------------------------- reading
def test_trainval_reads_every_training_image(gtsrb_files):
    ds = GTSRB(gtsrb_files.root, split='trainval')
    written = by_path(gtsrb_files.train)
    assert len(ds) == len(written)
    for info in infos(ds):
        rec = written[info['img_path']]
        assert info['gt_label'] == rec['label']
        assert tuple(info['roi']) == rec['roi']
        assert info['track'] == rec['track']
    assert ds.metainfo['classes'] == GTSRB_CLASSES and len(GTSRB_CLASSES) == 43
    assert np.array_equal(np.sort(ds.get_gt_labels()),
                          np.sort([r['label'] for r in gtsrb_files.train]))


def test_class_names_follow_class_ids():
    # a few well-known signs at their ClassId
    assert GTSRB_CLASSES[0] == 'Speed limit (20km/h)'
    assert GTSRB_CLASSES[14] == 'Stop'
    assert GTSRB_CLASSES[17] == 'No entry'
    assert GTSRB_CLASSES[42] == 'End of no passing by vehicles over 3.5 metric tons'
    assert len(set(GTSRB_CLASSES)) == 43


def test_class_counts(gtsrb_files):
    ds = GTSRB(gtsrb_files.root, split='trainval')
    expected = Counter(r['label'] for r in gtsrb_files.train)
    assert ds.class_counts() == [expected[c] for c in range(43)]


def test_official_final_training_folder_is_accepted(gtsrb_factory):
    files = gtsrb_factory(train_dir=osp.join('Final_Training', 'Images'))
    ds = GTSRB(files.root, split='trainval')
    assert {i['img_path'] for i in infos(ds)} == {r['path'] for r in files.train}


@pytest.mark.parametrize('where', ['images', 'root'])
def test_test_split_reads_labelled_csv(gtsrb_factory, where):
    files = gtsrb_factory(test_csv_in=where)
    ds = GTSRB(files.root, split='test')
    assert [i['img_path'] for i in infos(ds)] == [r['path'] for r in files.test]
    assert list(ds.get_gt_labels()) == [r['label'] for r in files.test]
    assert [tuple(i['roi']) for i in infos(ds)] == [r['roi'] for r in files.test]


def test_test_csv_option(gtsrb_factory, tmp_path):
    files = gtsrb_factory(test_csv_in='root')
    moved = str(tmp_path / 'labels.csv')
    os.rename(files.test_csv, moved)
    ds = GTSRB(files.root, split='test', test_csv=moved)
    assert list(ds.get_gt_labels()) == [r['label'] for r in files.test]


def test_only_unlabelled_test_csv_is_a_clear_error(gtsrb_factory):
    files = gtsrb_factory(test_csv_in=None)
    with pytest.raises(FileNotFoundError, match=r'GT-final_test\.csv not found.*'
                       r'GT-final_test\.test\.csv, which has no ClassId'):
        GTSRB(files.root, split='test')


def test_unlabelled_csv_given_as_test_csv(gtsrb_factory):
    files = gtsrb_factory(test_csv_in=None)
    unlabelled = osp.join(files.root, 'Final_Test', 'Images', 'GT-final_test.test.csv')
    with pytest.raises(ValueError, match=re.escape(unlabelled) + r', line 1: no ClassId column'):
        GTSRB(files.root, split='test', test_csv=unlabelled)


# ------------------------------------------------------------------------ track split
def test_train_val_split_by_track(gtsrb_files):
    train = infos(GTSRB(gtsrb_files.root, split='train'))
    val = infos(GTSRB(gtsrb_files.root, split='val'))
    trainval = infos(GTSRB(gtsrb_files.root, split='trainval'))
    train_tracks = {i['track'] for i in train}
    val_tracks = {i['track'] for i in val}
    assert train_tracks.isdisjoint(val_tracks)
    assert len(train) + len(val) == len(trainval)
    assert {i['img_path'] for i in train} | {i['img_path'] for i in val} == \
        {i['img_path'] for i in trainval}
    tracks_of = defaultdict(set)
    for rec in gtsrb_files.train:
        tracks_of[rec['label']].add(rec['track'])
    for label, tracks in tracks_of.items():
        in_train, in_val = tracks & train_tracks, tracks & val_tracks
        assert in_train, f'class {label} has no training track'
        assert bool(in_val) == (len(tracks) >= 2), label  # one-track classes stay in train


def test_split_is_deterministic_and_follows_the_seed(gtsrb_files):
    def val_tracks(seed):
        ds = GTSRB(gtsrb_files.root, split='val', split_seed=seed)
        return {i['track'] for i in infos(ds)}
    assert val_tracks(0) == val_tracks(0)
    assert val_tracks(0) != val_tracks(1)


@pytest.mark.parametrize('ratio,num_tracks,num_val', [(0.1, 4, 1), (0.5, 4, 2), (0.5, 3, 2),
                                                      (0.9, 4, 3), (0.5, 2, 1), (0.5, 1, 0)])
def test_held_out_tracks_per_class(ratio, num_tracks, num_val):
    tracks = [f'00000_{t:05d}' for t in range(num_tracks)]
    held = split_tracks({0: tracks}, ratio, seed=3)
    assert len(held) == num_val and held <= set(tracks)


def test_split_of_a_class_ignores_other_classes_and_order():
    a = [f'00000_{t:05d}' for t in range(10)]
    b = [f'00001_{t:05d}' for t in range(10)]
    both = split_tracks({0: a, 1: b}, 0.3, seed=5)
    alone = split_tracks({1: list(reversed(b)) * 2}, 0.3, seed=5)
    assert {t for t in both if t.startswith('00001')} == alone


# --------------------------------------------------------------------- images and ROI
def test_ppm_is_read_by_load_image_from_file(gtsrb_files):
    ds = GTSRB(gtsrb_files.root, split='trainval', pipeline=[LoadImageFromFile()])
    written = by_path(gtsrb_files.train)
    for idx in (0, len(ds) - 1):
        out = ds[idx]
        rgb = written[out['img_path']]['rgb']
        assert out['img'].shape == rgb.shape
        np.testing.assert_array_equal(out['img'], rgb[..., ::-1])  # OpenCV: BGR


@pytest.mark.parametrize('split', ['trainval', 'test'])
def test_roi_crop_option(gtsrb_files, split):
    ds = GTSRB(gtsrb_files.root, split=split, roi_crop=True, pipeline=[LoadImageFromFile()])
    written = by_path(gtsrb_files.train if split == 'trainval' else gtsrb_files.test)
    for idx in range(0, len(ds), 7):
        out = ds[idx]
        x1, y1, x2, y2 = written[out['img_path']]['roi']
        assert out['img'].shape == (y2 - y1 + 1, x2 - x1 + 1, 3)
        assert out['img_shape'] == (y2 - y1 + 1, x2 - x1 + 1)
        rgb = written[out['img_path']]['rgb']
        np.testing.assert_array_equal(out['img'], rgb[y1:y2 + 1, x1:x2 + 1, ::-1])


def test_crop_roi_from_the_registry(gtsrb_files):
    from mmpretrain.registry import TRANSFORMS
    ds = GTSRB(gtsrb_files.root, split='trainval',
               pipeline=[dict(type='LoadImageFromFile'), dict(type='CropROI')])
    assert isinstance(TRANSFORMS.get('CropROI')(), CropROI)
    out = ds[3]
    x1, y1, x2, y2 = by_path(gtsrb_files.train)[out['img_path']]['roi']
    assert out['img'].shape[:2] == (y2 - y1 + 1, x2 - x1 + 1)


def test_roi_crop_needs_load_image(gtsrb_files):
    with pytest.raises(ValueError, match='roi_crop=True needs a LoadImageFromFile'):
        GTSRB(gtsrb_files.root, split='trainval', roi_crop=True)


def test_roi_crop_twice_is_refused(gtsrb_files):
    with pytest.raises(ValueError, match='already has a CropROI'):
        GTSRB(gtsrb_files.root, split='trainval', roi_crop=True,
              pipeline=[LoadImageFromFile(), CropROI()])


def test_crop_roi_clips_and_checks():
    img = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    out = CropROI()(dict(img=img, roi=(4, 3, 20, 20)))
    np.testing.assert_array_equal(out['img'], img[3:, 4:])
    with pytest.raises(ValueError, match='already cropped'):
        CropROI()(out)
    with pytest.raises(KeyError, match="no 'roi' in the data info of a.ppm"):
        CropROI()(dict(img=img, img_path='a.ppm'))
    with pytest.raises(ValueError, match=r'starts outside the 6x5 \(WxH\) image'):
        CropROI()(dict(img=img, roi=(6, 0, 7, 2)))
    with pytest.raises(ValueError, match=r'invalid ROI .* need 0 <= x1 <= x2'):
        CropROI()(dict(img=img, roi=(3, 0, 2, 2)))
    with pytest.raises(ValueError, match='four integers'):
        CropROI()(dict(img=img, roi=(0.5, 0, 2, 2)))


# --------------------------------------------------------------------------- errors
def _edit_csv(files, class_id, line, edit):
    """Replace line ``line`` (1-based) of GT-<class>.csv by ``edit(old_line)``."""
    path = files.csv_of(class_id)
    with open(path) as f:
        lines = f.read().splitlines()
    lines[line - 1] = edit(lines[line - 1])
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def _set_field(index, value, *more):
    """An edit setting field ``index`` to ``value`` (and further index, value pairs)."""
    changes = dict(zip((index, ) + more[::2], (value, ) + more[1::2]))

    def edit(line):
        cells = line.split(';')
        for i, v in changes.items():
            cells[i] = v
        return ';'.join(cells)
    return edit


@pytest.mark.parametrize('line,edit,error,message', [
    (1, lambda h: h.replace('Roi.X2;', ''), ValueError, r'line 1: missing column\(s\) Roi\.X2'),
    (3, _set_field(1, 'wide'), ValueError, r"line 3: Width must be an integer, got 'wide'"),
    (2, _set_field(7, '43'), ValueError, r'line 2: ClassId 43 outside 0\.\.42'),
    (2, _set_field(7, '-1'), ValueError, r'line 2: ClassId -1 outside 0\.\.42'),
    (3, _set_field(7, '5'), ValueError, r'line 3: ClassId 5 in the folder of class 00003'),
    (2, _set_field(0, 'nope.ppm'), FileNotFoundError, r'line 2: image not found: .*nope\.ppm'),
    (3, lambda row: row + ';9', ValueError, r'line 3: 9 fields, expected 8'),
    (2, _set_field(3, '5', 5, '2'), ValueError, r'line 2: invalid ROI'),
    (2, _set_field(3, '30', 5, '40'), ValueError, r'line 2: ROI .* starts outside the'),
], ids=['missing-column', 'bad-int', 'class-too-big', 'class-negative', 'class-vs-folder',
        'missing-image', 'extra-field', 'roi-x2-before-x1', 'roi-outside'])
def test_malformed_csv_names_file_and_line(gtsrb_files, line, edit, error, message):
    path = _edit_csv(gtsrb_files, 3, line, edit)
    with pytest.raises(error, match=re.escape(path) + ', ' + message):
        GTSRB(gtsrb_files.root, split='trainval')


def test_training_name_without_track_is_an_error(gtsrb_files):
    old = gtsrb_files.csv_of(2).replace('GT-00002.csv', '00000_00000.ppm')
    os.rename(old, old.replace('00000_00000.ppm', 'frame0.ppm'))
    path = _edit_csv(gtsrb_files, 2, 2, _set_field(0, 'frame0.ppm'))
    with pytest.raises(ValueError, match=re.escape(path) + r", line 2: training image name "
                       r"'frame0.ppm' is not TTTTT_FFFFF\.ppm"):
        GTSRB(gtsrb_files.root, split='train')


def test_missing_data_root(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as info:
        GTSRB(missing, split='train')
    assert f'GTSRB data root not found: {missing}' in str(info.value)
    assert LAYOUTS['GTSRB'] in str(info.value)


def test_missing_training_folder(tmp_path):
    (tmp_path / 'gtsrb').mkdir()
    with pytest.raises(FileNotFoundError, match=r'GTSRB training folder not found: .*Training'
                       r'(.|\n)*expected layout: GTSRB'):
        GTSRB(str(tmp_path / 'gtsrb'))


def test_missing_class_folder(gtsrb_files):
    folder = osp.join(gtsrb_files.train_dir, '00042')
    for name in os.listdir(folder):
        os.remove(osp.join(folder, name))
    os.rmdir(folder)
    with pytest.raises(FileNotFoundError, match=r'lacks the class folder\(s\) 00042'):
        GTSRB(gtsrb_files.root)


def test_missing_gt_csv(gtsrb_files):
    os.remove(gtsrb_files.csv_of(7))
    with pytest.raises(FileNotFoundError, match='annotation file not found: ' +
                       re.escape(gtsrb_files.csv_of(7))):
        GTSRB(gtsrb_files.root)


@pytest.mark.parametrize('name', ['00043', 'extra'])
def test_unexpected_training_folder(gtsrb_files, name):
    os.makedirs(osp.join(gtsrb_files.train_dir, name))
    with pytest.raises(ValueError, match=f'unexpected folder .*{name} in the GTSRB training'):
        GTSRB(gtsrb_files.root)


def test_missing_test_images(gtsrb_factory):
    files = gtsrb_factory()
    os.rename(osp.join(files.root, 'Final_Test'), osp.join(files.root, 'elsewhere'))
    with pytest.raises(FileNotFoundError, match='GTSRB test image folder not found'):
        GTSRB(files.root, split='test')


@pytest.mark.parametrize('kwargs,error,message', [
    (dict(split='validation'), ValueError, r"unknown split 'validation'"),
    (dict(val_ratio=0), ValueError, r'val_ratio must be a number in \(0, 1\)'),
    (dict(val_ratio=1.0), ValueError, r'val_ratio must be a number in \(0, 1\)'),
    (dict(val_ratio=True), ValueError, r'val_ratio must be a number in \(0, 1\)'),
    (dict(split_seed=-1), ValueError, r'split_seed must be >= 0'),
    (dict(split_seed=1.5), TypeError, r'split_seed must be an int'),
    (dict(roi_crop='yes'), TypeError, r'roi_crop must be a bool'),
])
def test_bad_options(gtsrb_files, kwargs, error, message):
    with pytest.raises(error, match=message):
        GTSRB(gtsrb_files.root, **kwargs)


def test_empty_data_root():
    with pytest.raises(ValueError, match=r"GTSRB needs data_root .* got ''"):
        GTSRB('')


# ------------------------------------------------- rows that would give silent wrong data
def _append_row(path, row):
    with open(path, 'a') as f:
        f.write(row + '\n')


def _rows(path):
    with open(path) as f:
        return f.read().splitlines()


def test_repeated_row_is_refused(gtsrb_files):
    # a copy of line 2 at line 4 (class 3 has 2 frames per track): no image counted twice
    path = gtsrb_files.csv_of(3)
    rows = _rows(path)
    _append_row(path, rows[1])
    line = len(rows) + 1
    with pytest.raises(ValueError, match=re.escape(path) + f', line {line}: image '
                       r"'00000_00000\.ppm' is already listed at line 2; each image must "
                       'be listed once'):
        GTSRB(gtsrb_files.root, split='trainval')


def test_repeated_row_of_the_test_csv_is_refused(gtsrb_files):
    rows = _rows(gtsrb_files.test_csv)
    _append_row(gtsrb_files.test_csv, rows[3])
    with pytest.raises(ValueError, match=re.escape(gtsrb_files.test_csv) +
                       f', line {len(rows) + 1}: image .* is already listed at line 4'):
        GTSRB(gtsrb_files.root, split='test')


@pytest.mark.parametrize('name', ['../00001/00000_00000.ppm', '00000/../../00001/00000_00000.ppm'])
def test_filename_outside_the_class_folder_is_refused(gtsrb_files, name):
    # the image of class 1 under the label of class 3: refused, naming the row
    path = _edit_csv(gtsrb_files, 3, 2, _set_field(0, name))
    with pytest.raises(ValueError, match=re.escape(path) + ', line 2: Filename ' +
                       re.escape(repr(name)) + ' points outside .*00003, the folder of this '
                       "CSV's images"):
        GTSRB(gtsrb_files.root, split='trainval')


def test_absolute_filename_is_refused(gtsrb_files):
    target = gtsrb_files.csv_of(3).replace('GT-00003.csv', '00000_00000.ppm')
    path = _edit_csv(gtsrb_files, 3, 2, _set_field(0, target))
    with pytest.raises(ValueError, match=re.escape(path) + ', line 2: Filename .* is an '
                       'absolute path'):
        GTSRB(gtsrb_files.root, split='trainval')


def test_filename_through_a_folder_link_is_refused(gtsrb_files):
    folder = osp.dirname(gtsrb_files.csv_of(3))
    os.symlink(osp.dirname(gtsrb_files.csv_of(1)), osp.join(folder, 'more'))
    path = _edit_csv(gtsrb_files, 3, 2, _set_field(0, 'more/00000_00000.ppm'))
    with pytest.raises(ValueError, match=re.escape(path) + r", line 2: Filename "
                       r"'more/00000_00000\.ppm' resolves to .*00001 through a symbolic link"):
        GTSRB(gtsrb_files.root, split='trainval')


def test_one_image_in_two_class_folders_is_refused(gtsrb_files):
    # class 3's first image replaced by a link to class 1's: one image, two labels
    first = gtsrb_files.csv_of(1).replace('GT-00001.csv', '00000_00000.ppm')
    linked = gtsrb_files.csv_of(3).replace('GT-00003.csv', '00000_00000.ppm')
    os.remove(linked)
    os.symlink(first, linked)
    with pytest.raises(ValueError, match=re.escape(gtsrb_files.csv_of(3)) + ", line 2: image "
                       r"'00000_00000\.ppm' is already listed at " +
                       re.escape(gtsrb_files.csv_of(1)) + ', line 2'):
        GTSRB(gtsrb_files.root, split='trainval')


def test_files_in_a_subfolder_and_file_links_into_a_store_are_accepted(gtsrb_files, tmp_path):
    # a sub-folder of the class folder, and an image that is a link into a store elsewhere
    # (git-annex / DVC style) stay accepted
    folder = osp.dirname(gtsrb_files.csv_of(3))
    os.makedirs(osp.join(folder, 'sub'))
    os.rename(osp.join(folder, '00000_00000.ppm'), osp.join(folder, 'sub', '00000_00000.ppm'))
    _edit_csv(gtsrb_files, 3, 2, _set_field(0, 'sub/00000_00000.ppm'))
    store = tmp_path / 'store'
    store.mkdir()
    os.rename(osp.join(folder, '00000_00001.ppm'), store / 'blob')
    os.symlink(store / 'blob', osp.join(folder, '00000_00001.ppm'))
    ds = GTSRB(gtsrb_files.root, split='trainval')
    assert len(ds) == len(gtsrb_files.train)


def test_val_split_with_single_track_classes_is_a_clear_error(gtsrb_factory):
    files = gtsrb_factory(tracks_per_class=[1] * 43)
    assert len(GTSRB(files.root, split='train')) == 2 * 43
    with pytest.raises(ValueError, match=r"GTSRB split='val' is empty: every class in .*"
                       r"Training has a single track.*use split='trainval'"):
        GTSRB(files.root, split='val')
