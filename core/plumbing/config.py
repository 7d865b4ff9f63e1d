"""The configuration of a run: keys declared once with their type, formed
once, checked once, then read-only.

`load_config(network, dataset, overrides)` reads the settings file afresh:
`sample_config.py` as the base, the user's `config.py` merged over it key by
key (a key or a section an older copy lacks keeps the sample's), then the
chosen network's section, the chosen dataset's section and "key=value"
overrides ("train.lr=1e-3" sets a training option). The result is checked
completely (`check`: every key known and of its type, the network buildable,
the training options usable) and returned as a read-only `Config`;
`apply_overrides` makes a new one. Nothing here changes any state.
"""
import ast
import copy
import os
import runpy

# The checkout: core/plumbing/config.py is two folders below it.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, 'sample_config.py')
USER = os.path.join(ROOT, 'config.py')
PARTS = ('config', 'network', 'dataset', 'default')
# Keys of `default` that choose the sections rather than set a training option.
SECTION_KEYS = ('network', 'dataset')


class ConfigError(ValueError):
    """A configuration that cannot be formed; the message names the key."""


class Config(dict):
    """A formed configuration: read by attribute (`cfg.train.lr`) or key,
    never changed (use `apply_overrides` for a changed copy)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError('the configuration has no key %r' % name)

    @property
    def scheme(self):
        """The landmark scheme (data.landmarks.Scheme) of `landmark_scheme`."""
        if '_scheme' not in self.__dict__:
            from data import landmarks
            object.__setattr__(self, '_scheme', landmarks.get(self['landmark_scheme']))
        return self.__dict__['_scheme']

    def _read_only(self, *args, **kwargs):
        raise TypeError('a formed configuration is read-only; make a changed copy with '
                        'core.plumbing.config.apply_overrides')

    __setattr__ = __setitem__ = __delitem__ = _read_only
    update = pop = popitem = clear = setdefault = _read_only

    def __reduce__(self):
        return Config, (dict(self),)

    def __deepcopy__(self, memo):
        return Config({k: copy.deepcopy(v, memo) for k, v in self.items()})


def _freeze(value):
    if isinstance(value, dict):
        return Config({k: _freeze(v) for k, v in value.items()})
    return value


def _thaw(value):
    """A plain, changeable deep copy."""
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    return copy.deepcopy(value)


# The keys --------------------------------------------------------------------------

class Kind(object):
    """A key's type: `accepts(value)` and the words of the error message."""

    def __init__(self, words, accepts):
        self.words, self.accepts = words, accepts


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


INT = Kind('an integer', lambda v: isinstance(v, int) and not isinstance(v, bool))
NUMBER = Kind('a number', _number)
BOOL = Kind('True or False', lambda v: isinstance(v, bool))
STR = Kind('a string', lambda v: isinstance(v, str))
NAMES = Kind('a list of names', lambda v: isinstance(v, (list, tuple)) and all(
    isinstance(n, str) for n in v))
EPOCHS = Kind("epochs like '20,35,45'", lambda v: isinstance(v, str) or INT.accepts(v))
DEVICES = Kind("None, or GPU numbers like '0,1' (-1 for the CPU)",
               lambda v: v is None or isinstance(v, str) or INT.accepts(v))
OPTIONAL_INT = Kind('None or an integer', lambda v: v is None or INT.accepts(v))
SCHEME = Kind('a scheme name (ibug68, wflw98, cofw29) or the path of a scheme JSON file',
              lambda v: isinstance(v, (str, dict)))

# Every key of a run's configuration, with its type (the values are in
# sample_config.py). `train` holds the training options.
KEYS = {
    'num_classes': INT, 'record_img_size': INT, 'base_scale': INT, 'input_img_size': INT,
    'output_label_size': INT, 'label_xfirst': BOOL, 'gaussian': NUMBER, 'mirror_heatmaps': BOOL,
    'multiplier': NUMBER, 'bn_mom': NUMBER, 'workspace': INT, 'per_batch_size': INT,
    'losstype': STR, 'net_coherent': INT, 'net_binarize': INT, 'net_block': STR, 'net_n': INT,
    'net_sat': INT, 'net_dcn': INT, 'net_stacks': INT, 'network': STR, 'dataset': STR,
    'landmark_type': STR, 'dataset_path': STR, 'val_targets': NAMES, 'landmark_scheme': SCHEME,
    'test_targets': NAMES,
}
TRAIN_KEYS = {
    'prefix': STR, 'pretrained': STR, 'allow_missing': BOOL, 'optimizer': STR, 'lr': NUMBER,
    'wd': NUMBER, 'lr_epoch_step': EPOCHS, 'ckpt': INT, 'exf': INT, 'frequent': INT,
    'validate_every': INT, 'kvstore': STR, 'seed': INT, 'gpus': DEVICES, 'workers': OPTIONAL_INT,
    'bad_records': NUMBER, 'dist_timeout': NUMBER, 'lr_steps': EPOCHS, 'min_validations': INT,
}
# Keys that must be at least 1.
POSITIVE = ('num_classes', 'record_img_size', 'input_img_size', 'output_label_size',
            'per_batch_size', 'net_n', 'net_stacks')
# Training options renamed since: an older config.py or saved run that sets
# the old name sets the new one.
RENAMED = {'verbose': 'validate_every'}
OPTIMIZERS = ('nadam', 'onadam', 'adam', 'rmsprop', 'sgd')
KVSTORES = ('device', 'local', 'dist_sync', 'dist_device_sync')


def _check_keys(section, table, where, prefix=''):
    for key, value in section.items():
        if key not in table:
            raise ConfigError('unknown config key %r in %s (known: %s)'
                              % (prefix + key, where, ', '.join(sorted(table))))
        if not table[key].accepts(value):
            raise ConfigError('config key %s%s = %r is not allowed; expected %s'
                              % (prefix, key, value, table[key].words))


def check_training(t):
    """ConfigError naming a training option that cannot work."""
    def require(ok, key, allowed):
        if not ok:
            raise ConfigError('train.%s = %r is not allowed; expected %s' % (key, t[key], allowed))
    require(t.optimizer in OPTIMIZERS, 'optimizer', ', '.join(OPTIMIZERS))
    require(t.kvstore in KVSTORES, 'kvstore', ', '.join(KVSTORES))
    require(t.ckpt in (0, 1), 'ckpt', '0 or 1')
    for key in ('validate_every', 'frequent', 'exf'):
        require(t[key] >= 1, key, 'an integer >= 1')
    require(t.min_validations >= 0, 'min_validations', 'an integer >= 0')
    require(t.lr > 0 and t.wd >= 0, 'lr' if t.lr <= 0 else 'wd', 'a positive number')
    require(0 <= t.bad_records <= 1, 'bad_records', 'a share between 0 and 1')
    require(t.dist_timeout > 0, 'dist_timeout', 'a positive number of seconds')
    require(t.workers is None or t.workers >= 0, 'workers', 'None or an integer >= 0')
    try:
        schedule(t)
    except ValueError as err:
        raise ConfigError(str(err))


def schedule(t):
    """(learning-rate boundaries, whether they are steps) of the training
    options `t`: --lr-steps when given, else --lr-epoch-step."""
    if t.lr_steps not in ('', None):
        return parse_epoch_steps(t.lr_steps, '--lr-steps', 'steps'), True
    return parse_epoch_steps(t.lr_epoch_step), False


def parse_epoch_steps(text, flag='--lr-epoch-step', unit='epochs'):
    """'20,35,45' -> [20, 35, 45]; the last step is the end of training."""
    try:
        steps = [int(v) for v in str(text).split(',') if v.strip()]
    except ValueError:
        steps = []
    if not steps or any(s <= 0 for s in steps) or steps != sorted(steps):
        raise ValueError("%s must be increasing positive %s like '20,35,45', got %r"
                         % (flag, unit, text))
    return steps


def check(cfg, where='the configuration'):
    """ConfigError (one line, naming the key) unless `cfg` is complete and
    usable: every key known and of its type, the network buildable
    (`symbol.validate`), the training options usable."""
    from symbol import validate
    train = cfg['train'] if 'train' in cfg and isinstance(cfg['train'], dict) else {}
    missing = sorted(set(KEYS) - set(cfg)) + ['train.' + k for k in sorted(
        set(TRAIN_KEYS) - set(train))]
    if missing:
        raise ConfigError('%s lacks the config keys %s' % (where, ', '.join(missing)))
    _check_keys({k: v for k, v in cfg.items() if k != 'train'}, KEYS, where)
    _check_keys(cfg['train'], TRAIN_KEYS, where, 'train.')
    for key in POSITIVE:
        if cfg[key] < 1:
            raise ConfigError('config key %s = %r is not allowed; expected an integer >= 1%s'
                              % (key, cfg[key], ' (--per-batch-size: samples per device)'
                                 if key == 'per_batch_size' else ''))
    check_scheme(cfg)
    from data.sets import LANDMARK_TYPES
    if cfg['landmark_type'] not in LANDMARK_TYPES:
        raise ConfigError('config key landmark_type = %r is not allowed; expected one of %s '
                          '(it selects the normalisation: 3d by the landmark box)'
                          % (cfg['landmark_type'], ', '.join(LANDMARK_TYPES)))
    try:
        validate(Config(cfg))
    except ValueError as err:
        raise ConfigError(str(err))
    check_training(Config(cfg['train']))


def check_scheme(cfg):
    """ConfigError unless the landmark scheme loads and the heads predict
    its number of points."""
    from data import landmarks
    try:
        scheme = landmarks.get(cfg['landmark_scheme'])
    except landmarks.SchemeError as err:
        raise ConfigError('config key landmark_scheme: %s' % err)
    if cfg['num_classes'] != scheme.count:
        raise ConfigError('num_classes = %d, but the landmark scheme %s has %d points (set '
                          'num_classes = %d, or leave it out beside landmark_scheme)'
                          % (cfg['num_classes'], scheme.name, scheme.count, scheme.count))


def _points_of_scheme(cfg, section, base=None):
    """The scheme of `cfg` resolved (a user's file, relative to `base` or
    the current folder, kept by content), and num_classes set from it where
    `section` names a scheme but no num_classes."""
    from data import landmarks
    if 'landmark_scheme' not in cfg or not SCHEME.accepts(cfg['landmark_scheme']):
        return
    try:
        cfg['landmark_scheme'] = landmarks.resolve(cfg['landmark_scheme'], base)
        if 'landmark_scheme' in section and 'num_classes' not in section:
            cfg['num_classes'] = landmarks.get(cfg['landmark_scheme']).count
    except landmarks.SchemeError as err:
        raise ConfigError('config key landmark_scheme: %s' % err)


# Forming ---------------------------------------------------------------------------

def _settings(path):
    """{config, network, dataset, default} of a settings file, fresh; a
    file that does not run is one ConfigError naming it."""
    try:
        namespace = runpy.run_path(path)
    except SyntaxError as err:
        raise ConfigError('%s, line %s: %s (fix it, or start again from sample_config.py)'
                          % (path, err.lineno, err.msg))
    except Exception as err:
        raise ConfigError('%s does not run: %s: %s' % (path, type(err).__name__, err))
    missing = [k for k in PARTS if k not in namespace]
    if missing:
        raise ConfigError('%s does not define %s' % (path, ', '.join(missing)))
    parts = {k: copy.deepcopy(dict(namespace[k])) for k in PARTS}
    parts['default'] = _renamed(parts['default'])
    return parts


def _renamed(train):
    """Training options with their old names (RENAMED) given their new ones."""
    return {RENAMED.get(k, k) if RENAMED.get(k) not in train else k: v
            for k, v in train.items()}


def _merge(base, theirs):
    """`theirs` over `base`, key by key into nested sections."""
    merged = dict(base)
    for key, value in theirs.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def settings(published=False, path=None):
    """The settings: the sample's, with the user's file (or `path`) merged
    over it key by key unless the published ones are wanted."""
    merged = _settings(SAMPLE)
    user = path or (USER if os.path.isfile(USER) else None)
    if user and not published:
        theirs = _settings(user)
        merged = {part: _merge(merged[part], theirs[part]) for part in PARTS}
        merged['source'] = user
    return merged


def load_config(network=None, dataset=None, overrides=(), published=False, path=None):
    """A fresh, checked, read-only configuration for `network` and
    `dataset` (the settings' defaults when None) with `overrides`
    ("key=value" strings or a dict) applied."""
    parts = settings(published, path)
    default = parts['default']
    network = network or default['network']
    dataset = dataset or default['dataset']
    for kind, name in (('network', network), ('dataset', dataset)):
        if name not in parts[kind]:
            raise ConfigError('%s must be one of %s, got %r'
                              % (kind, ', '.join(sorted(parts[kind])), name))
    cfg = dict(parts['config'])
    cfg.update(parts['network'][network])
    cfg.update(parts['dataset'][dataset])
    _points_of_scheme(cfg, parts['dataset'][dataset],
                      os.path.dirname(os.path.abspath(parts.get('source', SAMPLE))))
    # A config key among the training defaults (older copies kept
    # per_batch_size there) sets that key.
    cfg.update({k: v for k, v in default.items() if k in KEYS and k not in SECTION_KEYS})
    cfg.update(network=network, dataset=dataset,
               train={k: v for k, v in default.items() if k not in KEYS})
    return _formed(cfg, overrides, parts.get('source', 'sample_config.py'))


def base_config():
    """The sample's keys, as a saved configuration that lacks some (made
    by an older version) is completed with."""
    return load_config(published=True)


def restore(saved, where):
    """A configuration saved by a run, completed with the sample's keys it
    lacks, checked and read-only."""
    if isinstance(saved.get('train'), dict):
        saved = dict(saved, train=_renamed(saved['train']))
    return _formed(_merge(base_config(), saved), (), where)


def _formed(cfg, overrides, where):
    cfg = _thaw(cfg)
    items = dict(overrides) if isinstance(overrides, dict) else parse_overrides(overrides)
    for key, value in items.items():
        section, name = (cfg['train'], key[len('train.'):]) if key.startswith('train.') \
            else (cfg, key)
        table = TRAIN_KEYS if section is not cfg else KEYS
        name = RENAMED.get(name, name) if table is TRAIN_KEYS else name
        if name not in table:
            raise ConfigError('unknown config key %r (known: %s)'
                              % (key, ', '.join(sorted(table))))
        section[name] = value
    _points_of_scheme(cfg, items)
    check(cfg, where)
    return _freeze(cfg)


def apply_overrides(cfg, overrides):
    """A new checked configuration: `cfg` with "key=value" strings (or a
    {key: value} dict) applied; "train.key" sets a training option. Unknown
    keys are an error, so that a typo never silently does nothing."""
    return _formed(cfg, overrides, 'the configuration')


def parse_value(text):
    """A Python literal, else the plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(items, flag='--set'):
    """{key: value} of "key=value" strings (the one parser of every script)."""
    found = {}
    for item in items:
        key, sign, text = item.partition('=')
        if not sign or not key.strip():
            raise ConfigError('%s %r is not of the form KEY=VALUE' % (flag, item))
        found[key.strip()] = parse_value(text)
    return found


def lookup(cfg, key):
    """The value of "key" or "train.key" in `cfg`."""
    return cfg.train[key[len('train.'):]] if key.startswith('train.') else cfg[key]


def published_config(name):
    """The configuration of published model `name` (independent of config.py)."""
    from symbol import zoo
    model = zoo.model(name)
    return apply_overrides(load_config(model.network, model.dataset, published=True),
                           zoo.settings(name))
