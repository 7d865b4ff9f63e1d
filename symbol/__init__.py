"""Symbol builders for stacked Hourglass and SAT heatmap networks.

    from core.config import load_config
    from symbol import get_symbol
    cfg, _ = load_config('hourglass', 'i2d')
    sym = get_symbol(cfg)            # training symbol (losses + BlockGrad)
"""
from .network import FLIP_ORDER, get_symbol, inference_symbol, validate
from .params import compare_params, describe_mismatch, param_shapes, to_gluon

__all__ = ['FLIP_ORDER', 'get_symbol', 'inference_symbol', 'validate', 'compare_params',
           'describe_mismatch', 'param_shapes', 'to_gluon']
