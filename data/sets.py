"""The evaluation sets, one row each: the name a record set is built under,
the title papers print, the pixels (in the 384 record frame) the
evaluation box's top is raised by, 2D or 3D (which selects the
normalisation), the landmark scheme, the face count of the published set,
the published NMEs (%) of the model zoo's checkpoints on it, and the paper
table it is printed in (WFLW's attribute subsets have their own).

The protocol, the reports, the builders, the zoo and the configuration
check read this table; adding a set is one row. A set of your own (any
other record set in `dataset_path`) is evaluated with DEFAULT_TOP_RAISE and
the configuration's landmark type.
"""
import collections
import os

LANDMARK_TYPES = ('2d', '3d')
DEFAULT_TOP_RAISE = 40


MAIN_TABLE, WFLW_SUBSETS = 'results', 'WFLW subsets'


class EvalSet(collections.namedtuple('EvalSet', 'name title top_raise landmark_type scheme '
                                                'count published table',
                                     defaults=(MAIN_TABLE,))):
    """One evaluation set (see the module's text); `published` is
    {zoo model name: NME %}."""


def _wflw(suffix, title, count):
    return EvalSet('wflw_test' + suffix, title, DEFAULT_TOP_RAISE, '2d', 'wflw98', count, {},
                   WFLW_SUBSETS if suffix else MAIN_TABLE)


SETS = collections.OrderedDict((s.name, s) for s in (
    EvalSet('ibug', 'IBUG', 36, '2d', 'ibug68', 135, {
        'hg2d4-resnet': 7.719, 'hg2d3-hpm': 7.249, 'hg2d4-cab': 7.168, 'sat2d3-cab': 7.052,
        'hg2d3-cab': 6.974}),
    EvalSet('cofw_testset', 'COFW', 45, '2d', 'ibug68', 507, {
        'hg2d4-resnet': 6.776, 'hg2d3-hpm': 6.378, 'hg2d4-cab': 6.123, 'sat2d3-cab': 5.999,
        'hg2d3-cab': 5.983}),
    EvalSet('300W', '300W', 40, '2d', 'ibug68', 600, {
        'hg2d4-resnet': 6.482, 'hg2d3-hpm': 6.049, 'hg2d4-cab': 5.684, 'sat2d3-cab': 5.618,
        'hg2d3-cab': 5.647}),
    EvalSet('AFLW2000-3D', 'AFLW2000-3D', 30, '3d', 'ibug68', 2000, {
        'sat2d3-cab-3d': 3.072, 'hg2d3-cab-3d': 3.005}),
    _wflw('', 'WFLW', 2500),
    _wflw('_largepose', 'WFLW pose', 326),
    _wflw('_expression', 'WFLW expression', 314),
    _wflw('_illumination', 'WFLW illumination', 698),
    _wflw('_makeup', 'WFLW make-up', 206),
    _wflw('_occlusion', 'WFLW occlusion', 736),
    _wflw('_blur', 'WFLW blur', 773),
    EvalSet('cofw29_test', 'COFW-29', DEFAULT_TOP_RAISE, '2d', 'cofw29', 507, {}),
))


def get(name, landmark_type='2d'):
    """The row of set `name`; a set of your own gets a row of the defaults
    (its title its name, DEFAULT_TOP_RAISE, `landmark_type`)."""
    if name in SETS:
        return SETS[name]
    return EvalSet(name, name, DEFAULT_TOP_RAISE, landmark_type, None, None, {})


def published_nme(model, name):
    """The published NME (%) of zoo model `model` on set `name`, or None."""
    return SETS[name].published.get(model) if name in SETS else None


def published_sets(model):
    """{set name: published NME %} of zoo model `model`."""
    return collections.OrderedDict((s.name, s.published[model]) for s in SETS.values()
                                   if model in s.published)


def check_targets(names, dataset_path, key):
    """The names of `names` whose record set is in `dataset_path`. A name
    that is neither an evaluation set of the table nor a record set there
    is a ValueError naming it (a misspelt set would otherwise be left out
    silently); a set of the table that is absent is left out."""
    present = [n for n in names if os.path.isfile(os.path.join(dataset_path, n + '.rec'))]
    unknown = [n for n in names if n not in present and n not in SETS]
    if unknown:
        there = sorted(f[:-4] for f in os.listdir(dataset_path) if f.endswith('.rec')) \
            if os.path.isdir(dataset_path) else []
        raise ValueError('%s: %s is neither an evaluation set (%s) nor a record set in %s (%s); '
                         'the record sets there: %s' % (
                             key, ', '.join(repr(n) for n in unknown), ', '.join(SETS),
                             dataset_path, ', '.join(n + '.rec' for n in unknown),
                             ', '.join(there) or 'none'))
    return present
