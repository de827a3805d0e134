"""Analysis helpers of mmdyn: complexity counting and A2D2C attention capture."""
from .attention import (A2D2CAttentionRecorder, A2D2CRecord, find_a2d2c_layers,
                        layer_attention, positions_to_yx)
from .complexity import (PAPER_FIGURES, ComplexityResult, TraceError, analytic_madds,
                         analytic_model_madds, count_complexity, extra_op_handles,
                         match_paper_row)

__all__ = [
    'PAPER_FIGURES', 'ComplexityResult', 'TraceError', 'analytic_madds',
    'analytic_model_madds', 'count_complexity', 'extra_op_handles', 'match_paper_row',
    'A2D2CAttentionRecorder', 'A2D2CRecord', 'find_a2d2c_layers', 'layer_attention',
    'positions_to_yx'
]
