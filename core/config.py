"""The configuration of a run, formed once and explicitly.

`load_config(network, dataset, overrides)` reads the settings file afresh
and layers it: `sample_config.py` as the base, the user's `config.py` over
it (keys an older copy lacks keep the sample's value), the chosen network's
section, the chosen dataset's section, then "key=value" overrides
("train.lr=1e-3" for a training option). It returns a new EasyDict and
changes nothing else; the training options are its `train` section.
"""
import ast
import copy
import os
import runpy

from easydict import EasyDict as edict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, 'sample_config.py')
USER = os.path.join(ROOT, 'config.py')
# Keys of `default` that choose the sections rather than set a training option.
SECTION_KEYS = ('network', 'dataset')


class ConfigError(ValueError):
    """A configuration that cannot be formed; the message names the key."""


def _settings(path):
    """{config, network, dataset, default} of a settings file, fresh."""
    namespace = runpy.run_path(path)
    missing = [k for k in ('config', 'network', 'dataset', 'default') if k not in namespace]
    if missing:
        raise ConfigError('%s does not define %s' % (path, ', '.join(missing)))
    return {k: copy.deepcopy(namespace[k]) for k in ('config', 'network', 'dataset', 'default')}


def settings(published=False, path=None):
    """The settings, the sample's under the user's file (or `path`) unless
    the published ones are wanted."""
    merged = _settings(SAMPLE)
    user = path or (USER if os.path.isfile(USER) else None)
    if user and not published:
        theirs = _settings(user)
        merged['config'].update(theirs['config'])
        merged['default'].update(theirs['default'])
        merged['network'], merged['dataset'] = theirs['network'], theirs['dataset']
    return merged


def load_config(network=None, dataset=None, overrides=(), published=False, path=None):
    """A fresh configuration for `network` and `dataset` (the settings'
    defaults when None), with `overrides` ("key=value") applied."""
    parts = settings(published, path)
    default = parts['default']
    network = network or default.network
    dataset = dataset or default.dataset
    for kind, name in (('network', network), ('dataset', dataset)):
        if name not in parts[kind]:
            raise ConfigError('%s must be one of %s, got %r'
                              % (kind, ', '.join(sorted(parts[kind])), name))
    cfg = edict(parts['config'])
    cfg.update(parts['network'][network])
    cfg.update(parts['dataset'][dataset])
    cfg.network, cfg.dataset = network, dataset
    cfg.train = edict({k: v for k, v in default.items() if k not in SECTION_KEYS})
    return apply_overrides(cfg, overrides)


def parse_value(text):
    """A Python literal, else the plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(cfg, overrides):
    """A copy of `cfg` with "key=value" strings (or a {key: value} dict)
    applied; "train.key" sets a training option. Unknown keys are an error,
    so that a typo never silently does nothing."""
    cfg = edict(copy.deepcopy(dict(cfg)))
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    for key, value in items:
        section, name = (cfg.train, key[len('train.'):]) if key.startswith('train.') else (cfg, key)
        if name not in section or name == 'train':
            known = sorted(k for k in section if k != 'train')
            raise ConfigError('unknown config key %r (known: %s)' % (key, ', '.join(known)))
        section[name] = value
    return cfg


def _split(item):
    if '=' not in item:
        raise ConfigError('override %r is not of the form key=value' % item)
    key, text = item.split('=', 1)
    return key.strip(), parse_value(text)


def published_config(name):
    """The configuration of published model `name` (independent of config.py)."""
    from symbol import zoo
    model = zoo.model(name)
    return apply_overrides(load_config(model.network, model.dataset, published=True),
                           zoo.settings(name))

