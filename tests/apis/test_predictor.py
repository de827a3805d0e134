"""mmdyn.apis (load_model, the classification predictor, class names, weight
loading, A2D2C attention and DMC masks) on a tiny CIFAR-stem ResNet classifier
(static, A2D2C+ and DMC, random weights, generated 32x32 images)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from apis._inference_helpers import (CKPT_TEMPERATURE, NAMES, NotAllowed, classifier_setup,
                                     save_random_checkpoint, write_dmc_config)


@pytest.fixture(scope='module')
def cls(tmp_path_factory):
    return classifier_setup(tmp_path_factory.mktemp('predict'))


def _reference_probs(predictor, path):
    """Softmax of the model on ``path`` computed without the inferencer: PIL
    read, BGR as OpenMMLab loads it, the model's own data preprocessor."""
    rgb = np.asarray(Image.open(path).convert('RGB'))
    chw = torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1)
    model = predictor.model
    with torch.no_grad():
        x = model.data_preprocessor(dict(inputs=[chw], data_samples=None), False)['inputs']
        return torch.softmax(model(x, mode='tensor'), 1)[0]


def test_classification_predict_matches_an_independent_forward(cls):
    from mmdyn.apis import load_model
    p = load_model(cls['dyn'], cls['dyn_ckpt'])
    assert p.task == 'classification' and p.is_dynamic and len(p.a2d2c_layers) > 4
    assert p.classes == NAMES and p.classes_source == 'checkpoint meta.dataset_meta'
    # The checkpoint's temperature (not the constructor's 30, not the hook's end 2.0).
    assert p.temperature == CKPT_TEMPERATURE
    assert {m.temperature for m in p.a2d2c_layers.values()} == {CKPT_TEMPERATURE}
    result = p.predict(cls['image'], topk=5)
    ref = _reference_probs(p, cls['image'])
    np.testing.assert_allclose(result.scores, ref.numpy(), rtol=1e-5, atol=1e-6)
    assert abs(result.scores.sum() - 1) < 1e-5
    order = np.argsort(-ref.numpy(), kind='stable')[:5]
    assert [c.label for c in result.topk] == order.tolist()
    assert [c.name for c in result.topk] == [NAMES[i] for i in order]
    scores = [c.score for c in result.topk]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5
    assert result.pred_name == NAMES[order[0]] and result.image_shape == (32, 32)
    # topk larger than the number of classes gives all classes; an array input works too.
    bgr = np.asarray(Image.open(cls['image']).convert('RGB'))[..., ::-1].copy()
    everything = p.predict(bgr, topk=10)
    assert len(everything.topk) == 6 and everything.topk[:5] == result.topk
    assert json.loads(json.dumps(result.to_dict()))['topk'][0]['name'] == result.pred_name


def test_legacy_checkpoint_without_temperature_gets_the_end_temperature(cls, tmp_path):
    """A checkpoint written before mmdyn stored the temperature: the layers warn and
    the config's TemperatureAnnealHook end value (2.0) is used, as tools/test.py does."""
    from mmdyn.apis import load_model
    ckpt = torch.load(cls['dyn_ckpt'], weights_only=True)
    ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items()
                          if not k.endswith('.temperature')}
    torch.save(ckpt, tmp_path / 'legacy.pth')
    with pytest.warns(UserWarning, match='no attention temperature'):
        p = load_model(cls['dyn'], str(tmp_path / 'legacy.pth'))
    assert p.temperature == 2.0
    assert {m.temperature for m in p.a2d2c_layers.values()} == {2.0}


def test_class_names_fallbacks(cls):
    from mmdyn.apis import load_model
    # No meta in the checkpoint, none in the config: generated names.
    p = load_model(cls['dyn'], cls['dyn_plain'])
    assert p.classes == tuple(f'class {i}' for i in range(6)) and p.classes_source == 'generated'
    # The config's dataset metainfo.
    names = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5']
    p = load_model(cls['dyn'], cls['dyn_plain'],
                   cfg_options={'test_dataloader.dataset.metainfo': dict(classes=names)})
    assert p.classes == tuple(names) and p.classes_source == 'config test dataset metainfo'
    # The checkpoint's names come first.
    p = load_model(cls['dyn'], cls['dyn_ckpt'],
                   cfg_options={'test_dataloader.dataset.metainfo': dict(classes=names)})
    assert p.classes == NAMES
    # Names of the wrong length are skipped with a warning.
    with pytest.warns(UserWarning, match='ignoring the 2 class names'):
        p = load_model(cls['dyn'], cls['dyn_plain'],
                       cfg_options={'test_dataloader.dataset.metainfo': dict(classes=['a', 'b'])})
    assert p.classes_source == 'generated'


def test_load_model_errors(cls, tmp_path):
    from mmdyn.apis import load_model
    with pytest.raises(FileNotFoundError, match='config file not found: .*nope.py'):
        load_model(str(tmp_path / 'nope.py'), cls['dyn_ckpt'])
    with pytest.raises(FileNotFoundError, match='checkpoint file not found: .*nope.pth'):
        load_model(cls['dyn'], str(tmp_path / 'nope.pth'))
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'this is not a checkpoint' * 10)
    with pytest.raises(RuntimeError, match='corrupt.pth'):
        load_model(cls['dyn'], str(corrupt))
    # A static checkpoint does not fit the A2D2C+ model (kernel banks have a K axis).
    with pytest.raises(ValueError, match=r'static.pth does not match the model: .*shape'):
        load_model(cls['dyn'], cls['static_ckpt'])
    with pytest.warns(UserWarning, match='does not match'):
        p = load_model(cls['dyn'], cls['static_ckpt'], strict=False)
    assert p.classes == NAMES
    from mmdyn.engine import UnsafeCheckpointError
    unsafe = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': {'foo.weight': torch.zeros(2)}, 'extra': NotAllowed()}, unsafe)
    with pytest.raises(UnsafeCheckpointError, match='unsafe.pth'):
        load_model(cls['dyn'], str(unsafe))
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'foo.weight': torch.zeros(2)}}, other)
    with pytest.raises(ValueError, match='no parameter name in common'):
        load_model(cls['dyn'], str(other))
    seg = tmp_path / 'seg.py'
    seg.write_text("default_scope = 'mmseg'\nmodel = dict(type='X')\n")
    with pytest.raises(ValueError, match=r"unsupported default_scope 'mmseg' in config .*seg.py"):
        load_model(str(seg), cls['dyn_ckpt'])
    with pytest.raises(ValueError, match='CUDA is not available|invalid device'):
        load_model(cls['dyn'], cls['dyn_ckpt'], device='cuda:7' if not
                   torch.cuda.is_available() else 'nodevice')


def test_image_and_argument_errors(cls, tmp_path):
    from mmdyn.apis import load_model, read_image
    p = load_model(cls['static'], cls['static_ckpt'])
    assert not p.is_dynamic and p.attention(cls['image']) is None
    with pytest.raises(FileNotFoundError, match='image not found: .*missing.png'):
        p.predict(str(tmp_path / 'missing.png'))
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not an image at all')
    with pytest.raises(ValueError, match='cannot read image .*bad.png'):
        p.predict(str(bad))
    with pytest.raises(TypeError, match='uint8'):
        p.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match='shape'):
        read_image(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match='topk must be >= 1'):
        p.predict(cls['image'], topk=0)
    with pytest.raises(ValueError, match='score_thr'):
        p.predict(cls['image'], score_thr=1.5)
    with pytest.raises(ValueError, match='no A2D2C'):
        p.record_attention(cls['image'])
    assert read_image(np.zeros((5, 7), np.uint8)).shape == (5, 7, 3)


def test_draw_and_attention(cls):
    from mmdyn.apis import load_model
    p = load_model(cls['dyn'], cls['dyn_ckpt'])
    result = p.predict(cls['image'])
    drawn = p.draw(cls['image'], result)
    assert drawn.shape == (256, 256, 3) and drawn.dtype == np.uint8
    plain = np.asarray(Image.open(cls['image']).convert('RGB').resize((256, 256),
                                                                      Image.NEAREST))
    changed = np.any(drawn != plain, axis=2)
    assert changed[:40, :60].mean() > 0.2      # the top-k text box at the top left
    assert changed[-60:, -60:].mean() == 0     # the rest is the image, scaled
    with pytest.raises(ValueError, match='differs'):
        p.draw(np.zeros((10, 10, 3), np.uint8), result)
    # Attention: the first A2D2C+ layer, its 8 fixed points, π sums to 1 over K.
    before = torch.get_rng_state()
    record = p.record_attention(cls['image'])
    assert torch.equal(torch.get_rng_state(), before)   # the global RNG is untouched
    assert record.name == next(iter(p.a2d2c_layers)) and record.positions.shape == (1, 8)
    assert torch.allclose(record.attention.sum(1), torch.ones(1, record.attention.size(2)))
    assert record.temperature == CKPT_TEMPERATURE and record.output.shape[-2:] == (32, 32)
    everywhere = p.record_attention(cls['image'], sampling='none')
    assert everywhere.positions is None
    assert next(iter(p.a2d2c_layers.values())).eval_sampling == 'fixed'   # restored
    figure = p.attention(cls['image'])
    assert figure.ndim == 3 and figure.shape[1] > 3 * figure.shape[0] > 600
    assert figure.std() > 10
    grid = p.attention(cls['image'], layout='grid')
    assert grid.shape[0] > 0.6 * grid.shape[1] and grid.std() > 10
    with pytest.raises(ValueError, match='layout'):
        p.attention(cls['image'], layout='column')
    last = list(p.a2d2c_layers)[-1]
    assert p.record_attention(cls['image'], layer=last).name == last
    with pytest.raises(ValueError, match='available'):
        p.record_attention(cls['image'], layer='backbone.nope')
    with pytest.raises(ValueError, match='unknown sampling'):
        p.record_attention(cls['image'], sampling='sometimes')


@pytest.fixture(scope='module')
def dmc(cls):
    tmp = cls['tmp']
    spatial = write_dmc_config(tmp / 'dmc.py', cls['data'])
    channel = write_dmc_config(tmp / 'dmc_channel.py', cls['data'], mask='channel',
                               enhance="dict(type='AdaptiveEnhancement', "
                                       "pixel_attention=False)")
    plain = write_dmc_config(tmp / 'dmc_none.py', cls['data'], mask='none', enhance='None')
    return dict(spatial=spatial, spatial_ckpt=save_random_checkpoint(spatial, tmp / 'dmc.pth'),
                channel=channel,
                channel_ckpt=save_random_checkpoint(channel, tmp / 'dmc_channel.pth', seed=2),
                none=plain, none_ckpt=save_random_checkpoint(plain, tmp / 'dmc_none.pth', seed=3))


def _captured_input(predictor, image, name):
    """The input of module ``name`` during an independent preprocessed forward
    (the model's data preprocessor on the BGR image, as OpenMMLab loads it)."""
    rgb = np.asarray(Image.open(image).convert('RGB'))
    chw = torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1)
    model = predictor.model
    seen = []
    handle = model.get_submodule(name).register_forward_hook(
        lambda m, args, out: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            x = model.data_preprocessor(dict(inputs=[chw], data_samples=None),
                                        False)['inputs']
            model.extract_feat(x)
    finally:
        handle.remove()
    assert len(seen) == 1
    return seen[0]


def test_dmc_predictor_records_masks_and_enhancement(cls, dmc):
    from mmdyn.analysis import DMCRecord
    from mmdyn.apis import load_model
    p = load_model(dmc['spatial'], dmc['spatial_ckpt'])
    assert p.is_dynamic and not p.a2d2c_layers and len(p.dmc_layers) == 4
    assert list(p.attention_layers) == list(p.dmc_layers)
    assert 'dmc_layers=4' in repr(p)
    first, last = list(p.dmc_layers)[0], list(p.dmc_layers)[-1]
    assert p.layer_kind(first) == 'dmc'
    record = p.record_attention(cls['image'])          # default: the first DMC layer
    assert isinstance(record, DMCRecord) and record.name == first == 'backbone.layer1.0.conv2'
    assert record.mask_kind == 'spatial' and record.branch_dilations == ((1, 1), (2, 2), (3, 3))
    # The masks are the layer's own, on the input an independent hook sees.
    x = _captured_input(p, cls['image'], first)
    assert torch.allclose(record.input, x, atol=1e-6)
    with torch.no_grad():
        expected = p.dmc_layers[first].masks(x)
    assert len(record.masks) == 3
    for got, ref in zip(record.masks, expected):
        assert got.shape == (1, 1, 32, 32)
        assert torch.allclose(got, ref, atol=1e-6)
        assert got.min() > 0 and got.max() < 1
    # The block's enhancement maps, from its own captured input.
    enh_name = 'backbone.layer1.0.residual_plugins.0'
    assert record.enhancement_name == enh_name and record.enhancement_mode == 'sequential'
    y = _captured_input(p, cls['image'], enh_name)
    with torch.no_grad():
        channel, pixel = p.model.get_submodule(enh_name).attention_maps(y)
    assert record.channel_attention.shape == (1, 8, 1, 1)
    assert record.pixel_attention.shape == (1, 1, 32, 32)
    assert torch.allclose(record.channel_attention, channel, atol=1e-6)
    assert torch.allclose(record.pixel_attention, pixel, atol=1e-6)
    # A layer of the second (stride-2) stage: 16x16 masks, 16 channels.
    deep = p.record_dmc(cls['image'], last)
    assert deep.name == last and deep.masks[0].shape == (1, 1, 16, 16)
    assert deep.channel_attention.shape == (1, 16, 1, 1)
    # The figure: input, three branch maps, pixel map, channel bars.
    row = p.attention(cls['image'])
    assert row.ndim == 3 and row.shape[1] > 4 * row.shape[0] and row.std() > 10
    grid = p.attention(cls['image'], layer=last, layout='grid')
    assert grid.shape[0] > 0.5 * grid.shape[1] and grid.std() > 10
    with pytest.raises(ValueError, match='A2D2C layers only'):
        p.attention(cls['image'], layer=first, sampling='random')
    with pytest.raises(ValueError, match='available'):
        p.record_attention(cls['image'], layer='backbone.layer1.0.conv1')
    with pytest.raises(ValueError, match='layout'):
        p.attention(cls['image'], layout='column')


def test_dmc_channel_and_no_mask_models(cls, dmc):
    from mmdyn.apis import draw_dmc_figure, load_model
    p = load_model(dmc['channel'], dmc['channel_ckpt'])
    name = list(p.dmc_layers)[1]
    record = p.record_attention(cls['image'], layer=name)
    x = _captured_input(p, cls['image'], name)
    with torch.no_grad():
        expected = p.dmc_layers[name].masks(x)
    assert record.mask_kind == 'channel' and len(record.masks) == 3
    for got, ref in zip(record.masks, expected):
        assert got.shape == (1, 8, 1, 1) and torch.allclose(got, ref, atol=1e-6)
        assert got.min() > 0 and got.max() < 1
    assert record.pixel_attention is None and record.channel_attention.shape == (1, 8, 1, 1)
    assert p.attention(cls['image'], layer=name).std() > 10
    # mask='none' and no enhancement: no masks, a figure with a message panel.
    q = load_model(dmc['none'], dmc['none_ckpt'])
    bare = q.record_dmc(cls['image'])
    assert bare.masks == [] and not bare.has_masks and not bare.has_enhancement
    assert bare.enhancement_name is None
    rgb = np.asarray(Image.open(cls['image']).convert('RGB'))
    figure = draw_dmc_figure(rgb, bare, layout='row')
    assert figure.shape[1] > 1.5 * figure.shape[0] and figure.std() > 10
    assert q.attention(cls['image']).shape == figure.shape
    # A static model has no DMC layer to record.
    static = load_model(cls['static'], cls['static_ckpt'])
    with pytest.raises(ValueError, match='no DMC'):
        static.record_dmc(cls['image'])


def test_predict_image_the_pipeline_cannot_take(cls, tmp_path):
    # a keep-ratio Resize to 32x32 makes the short side of a 10x10000 image 0 pixels:
    # a one-line ValueError naming the image and its size, not an OpenCV error
    from mmdyn.apis import load_model
    config = tmp_path / 'resize.py'
    config.write_text(f"_base_ = {cls['dyn']!r}\n"
                      "test_pipeline = [dict(type='LoadImageFromFile'), "
                      "dict(type='Resize', scale=(32, 32), keep_ratio=True), "
                      "dict(type='PackInputs')]\n"
                      'test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n')
    predictor = load_model(str(config), cls['dyn_ckpt'])
    tall = np.full((10000, 10, 3), 90, np.uint8)
    with pytest.raises(ValueError, match=r'^cannot predict the image array: the test pipeline '
                       r'fails on its 10x10000 pixels \(aspect ratio 1000:1\): .*resize'):
        predictor.predict(tall)
    with pytest.raises(ValueError, match='cannot predict the image: .*10x10000 pixels'):
        predictor.attention(tall)
    assert predictor.predict(tall[:40, :]).image_shape == (40, 10)  # a usable one still works


def test_draw_does_not_blow_up_extreme_aspect_ratios(cls):
    # the enlargement for readable text stops at MAX_DRAW_SIZE (4096) pixels on the longer
    # side (a 10000x10 image used to be drawn at 256000x256)
    from mmdyn.apis import load_model
    predictor = load_model(cls['dyn'], cls['dyn_ckpt'])
    for shape, drawn in [((10000, 10), (10000, 10)), ((10, 10000), (10, 10000)),
                         ((100, 3000), (136, 4080)), ((32, 32), (256, 256))]:
        img = np.full(shape + (3, ), 90, np.uint8)
        assert predictor.draw(img, predictor.predict(img)).shape[:2] == drawn, shape
