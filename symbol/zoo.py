"""The published checkpoints: their configurations and archives (their
published NMEs are rows of the evaluation sets' table, data.sets).

The table says how each published model differs from the settings of its
network and dataset; `core.plumbing.config.published_config(name)` forms the
whole configuration.
"""
import collections

Model = collections.namedtuple(
    'Model', 'title network block net_n dataset directory drive_id size_mb')

PUBLISHED = collections.OrderedDict([
    ('hg2d4-resnet', Model('Hourglass2(d=4)-Resnet', 'hourglass', 'resnet', 4, 'i2d',
                           'model-hg2d4-resnet', '1YPfF3t4J33Zj5goIZBk15TsxbqHB90rR', 26)),
    ('hg2d3-hpm', Model('Hourglass2(d=3)-HPM', 'hourglass', 'hpm', 3, 'i2d',
                        'model-hg2d3-hpm', '1-rDuuzxw9civqz9wTtklYqT6k3utr6Gc', 38)),
    ('hg2d4-cab', Model('Hourglass2(d=4)-CAB', 'hourglass', 'cab', 4, 'i2d',
                        'model-hg2d4-cab', '1o--WwpHoRw2W5bScan6t16vEKS53WBBm', 46)),
    ('sat2d3-cab', Model('SAT2(d=3)-CAB', 'satnet', 'cab', 3, 'i2d',
                         'model-sat2d3-cab', '1n-Nd4rdik-IWqIzgIEdssDKvZ7SwuOff', 40)),
    ('hg2d3-cab', Model('Hourglass2(d=3)-CAB', 'hourglass', 'cab', 3, 'i2d',
                        'model-hg2d3-cab', '1AbTGhIBzUUINTH2GNL05tSWvOHnclRr4', 37)),
    ('sat2d3-cab-3d', Model('SAT2(d=3)-CAB-3D', 'satnet', 'cab', 3, 'i3d',
                            'model-sat2d3-cab-3d', '1lxHbWZa_l457oFX4tgSpFaubDKU7LNuq', 40)),
    ('hg2d3-cab-3d', Model('Hourglass2(d=3)-CAB-3D', 'hourglass', 'cab', 3, 'i3d',
                           'model-hg2d3-cab-3d', '17rk_MiI_7CLfKqV8dsXvRyd56sfBcqMD', 37)),
])


# The demo's network (`make demo`): small enough to train in minutes on two
# CPU cores, with the cross-entropy heatmap loss (the L2 loss of the
# published recipe stays on its all-zero plateau for long on such networks).
DEMO_SETTINGS = collections.OrderedDict([('multiplier', 0.25), ('net_stacks', 1), ('net_n', 2),
                                         ('net_block', 'resnet'), ('losstype', 'ce')])


def set_flags(settings):
    """`--set key=value` flags of a script for `settings`."""
    return [word for key, value in settings.items() for word in ('--set', '%s=%s' % (key, value))]


def model(name):
    """The Model record of `name`; ValueError lists the published names."""
    if name not in PUBLISHED:
        raise ValueError('unknown model %r; published models: %s' % (name, ', '.join(PUBLISHED)))
    return PUBLISHED[name]


def settings(name):
    """Config keys of model `name` beyond its network's and dataset's sections."""
    entry = model(name)
    return {'net_block': entry.block, 'net_n': entry.net_n}


def name_of_directory(directory):
    """The published name whose archive unpacks to `directory`, or None."""
    for name, entry in PUBLISHED.items():
        if entry.directory == directory:
            return name
    return None
