"""Symbol builders for stacked Hourglass and SAT heatmap networks.

    sym = get_symbol(cfg)            # training symbol (losses + BlockGrad)

`cfg` is a configuration object (`core.plumbing.config.load_config` forms one from
the settings file); the builders read it and never load settings themselves.
"""
from .network import get_symbol, inference_symbol, validate
from .params import compare_params, describe_mismatch, param_shapes, to_gluon

__all__ = ['get_symbol', 'inference_symbol', 'validate', 'compare_params',
           'describe_mismatch', 'param_shapes', 'to_gluon']
