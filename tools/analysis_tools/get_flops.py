"""Count parameters and MAdds of a model from an MMDetection / MMPretrain config.

Usage::

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W] [--batch 1] [--mode eval|train]
        [--whole] [--cfg-options KEY=VALUE ...]

The model is built WITHOUT any dataset (nothing is downloaded) and traced with
MMEngine's ``FlopAnalyzer`` plus mmdyn's extra op handles, so dynamic
convolutions are counted as their code computes them (kernel aggregation,
attention, patch means...). The plain MMEngine count is printed beside ours.

* Classifiers (``default_scope='mmpretrain'``): the whole model,
  ``model(x, mode='tensor')``.
* Detectors (``default_scope='mmdet'``): backbone + neck (``extract_feat``);
  ``--whole`` also tries the whole detector (``mode='tensor'`` with dummy
  image metadata) and reports clearly if it cannot be traced.

When the config name matches a row of the paper's tables
(``mmdyn.analysis.paper_figures.PAPER_FIGURES``), the published figures are
printed beside ours. See ``docs/analysis_tools.md``.
"""
import argparse


def parse_args(argv=None):
    from mmdyn.engine import cli
    parser = argparse.ArgumentParser(description='Count params and MAdds (mmdyn)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input H W (one value = square); default 224 224 for '
                        'classifiers, 800 1333 for detectors')
    parser.add_argument('--batch', type=int, default=1, help='batch size (default 1)')
    parser.add_argument('--mode', choices=['eval', 'train'], default='eval',
                        help='count the eval path (default) or the train path (A2D2C '
                        'samples M points)')
    parser.add_argument('--whole', action='store_true',
                        help='detectors: also trace the whole detector (mode=tensor)')
    cli.add_config_options(parser)
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    cli.check_config_path(parser, args.config)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error(f'--shape takes H W or one size, got {args.shape}')
    if args.shape is not None and min(args.shape) < 1:
        parser.error(f'--shape must be positive sizes in pixels (H W or one size), got '
                     f'{" ".join(map(str, args.shape))}')
    if args.batch < 1:
        parser.error(f'--batch must be >= 1, got {args.batch}')
    return args


def _fmt_table(result, title: str) -> str:
    lines = [title, f'{"module":<24}{"params (M)":>12}{"MAdds (G)":>12}{"mmengine (G)":>14}']
    for name, params, madds, plain in result.top_level():
        if params == 0 and madds == 0:
            continue
        lines.append(f'{name:<24}{params / 1e6:>12.3f}{madds / 1e9:>12.4f}{plain / 1e9:>14.4f}')
    lines.append(f'{"total (params: model)":<24}{result.params / 1e6:>12.3f}'
                 f'{result.madds / 1e9:>12.4f}{result.madds_mmengine / 1e9:>14.4f}')
    missed = result.madds - result.madds_mmengine
    lines.append(f'plain mmengine FlopAnalyzer misses {missed / 1e9:.4f} GMAdds '
                 f'({100 * missed / max(result.madds, 1):.2f}% of the total)')
    if result.unsupported_ops:
        lines.append(f'ops not counted by either: {result.unsupported_ops}')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    from mmdyn.analysis.complexity import (TraceError, build_model_from_cfg,
                                           count_complexity, detector_tensor_forward,
                                           is_detector)
    from mmdyn.analysis.paper_figures import match_paper_row, reference_accuracy
    from mmdyn.engine.config import load_config
    cfg = load_config(args.config, args.cfg_options, init_scope=True)
    model = build_model_from_cfg(cfg)
    detector = is_detector(model)
    if args.shape is None:
        hw = (800, 1333) if detector else (224, 224)
    else:
        hw = (args.shape[0], args.shape[-1])
    shape = (args.batch, 3, *hw)
    print(f'config: {args.config}\nscope: {cfg.get("default_scope", "mmdet")}   '
          f'model: {type(model).__name__}   input: {shape}   mode: {args.mode}')
    if detector:
        result = count_complexity(model, shape, forward=lambda m, x: m.extract_feat(x),
                                  mode=args.mode)
        print(_fmt_table(result, '\n[backbone + neck]'))
        if args.whole:
            try:
                whole = count_complexity(model, shape, mode=args.mode,
                                         forward=detector_tensor_forward(*hw))
                print(_fmt_table(whole, '\n[whole detector, mode=tensor]'))
            except TraceError as exc:
                print(f'\n[whole detector] not counted: {exc}')
        params_total = result.params
    else:
        result = count_complexity(model, shape, forward=lambda m, x: m(x, mode='tensor'),
                                  mode=args.mode)
        print(_fmt_table(result, '\n[whole model, mode=tensor]'))
        params_total = result.params
    row = match_paper_row(args.config)
    if row is not None:
        key, fig = row
        ours = f'params {params_total / 1e6:.2f}M'
        paper = [f'params {fig["params"]:.2f}M'] if 'params' in fig else []
        if 'madds' in fig:
            ours += f', MAdds {result.madds / 1e9:.3f}G (batch {args.batch}, {hw[0]}x{hw[1]})'
            paper.append(f'MAdds {fig["madds"]:.3f}G')
        if reference_accuracy(fig):
            paper.append(reference_accuracy(fig))
        print(f'\npaper row {key} [{fig["source"]}]: {", ".join(paper)}\nours: {ours}')
    else:
        print('\n(no paper row matches this config name)')
    print('\nMAdds = multiply-adds (1 MAdd ~ 2 FLOPs), batch included. Element-wise ops, '
          'softmax and reductions are counted, activations are not; see '
          'docs/analysis_tools.md.')
    return result


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
