"""Analysis helpers of mmdyn: complexity counting (through each layer's ``madds``), the
papers' figures, A2D2C attention and DMC mask capture, the confusion matrix and the
benchmarks."""
from .attention import (A2D2CAttentionRecorder, A2D2CRecord, find_a2d2c_layers,
                        layer_attention, positions_to_yx)
from .complexity import (ComplexityResult, TraceError, analytic_madds, analytic_model_madds,
                         count_complexity, extra_op_handles)
from .paper_figures import PAPER_ACCURACY, PAPER_FIGURES, match_paper_row
from .dmc_masks import (DMCMaskRecorder, DMCRecord, dmc_record, find_dmc_enhancement,
                        find_dmc_layers)

__all__ = [
    'PAPER_FIGURES', 'PAPER_ACCURACY', 'ComplexityResult', 'TraceError', 'analytic_madds',
    'analytic_model_madds', 'count_complexity', 'extra_op_handles', 'match_paper_row',
    'A2D2CAttentionRecorder', 'A2D2CRecord', 'find_a2d2c_layers', 'layer_attention',
    'positions_to_yx', 'DMCMaskRecorder', 'DMCRecord', 'dmc_record', 'find_dmc_enhancement',
    'find_dmc_layers'
]
