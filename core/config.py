"""Load the user's settings: `config.py` when present, else `sample_config.py`."""
import ast
import copy
import importlib


def settings_module(published=False):
    """The module holding config/network/dataset/default/generate_config:
    the user's `config.py`, or `sample_config.py` when absent or when the
    published settings are wanted."""
    if published:
        return importlib.import_module('sample_config')
    try:
        return importlib.import_module('config')
    except ImportError:
        return importlib.import_module('sample_config')


def load_config(network='hourglass', dataset='i2d', overrides=(), published=False):
    """Return independent copies (config, default) for a network and dataset,
    with `overrides` ("key=value" strings) applied to both."""
    module = settings_module(published)
    config, default = module.generate_config(network, dataset)
    config, default = copy.deepcopy(config), copy.deepcopy(default)
    for key, value in parse_overrides(overrides, config).items():
        config[key] = value
        default[key] = value
    return config, default


def parse_overrides(overrides, config):
    """Parse "key=value" strings; values are Python literals or plain strings.
    Unknown keys are an error so that a typo never silently does nothing."""
    parsed = {}
    for item in overrides:
        if '=' not in item:
            raise ValueError("override %r is not of the form key=value" % item)
        key, text = item.split('=', 1)
        key = key.strip()
        if key not in config:
            raise ValueError("override names unknown config key %r (known: %s)"
                             % (key, ', '.join(sorted(config))))
        try:
            parsed[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed[key] = text
    return parsed
