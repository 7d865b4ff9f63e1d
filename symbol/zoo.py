"""The published checkpoints: their configurations, archives and accuracy.

The table says how each published model differs from the settings of its
network and dataset; `core.config.published_config(name)` forms the whole
configuration.
"""
import collections

Model = collections.namedtuple(
    'Model', 'title network block net_n dataset directory drive_id size_mb nme')

# NME (%) as published: 2D models on (IBUG, COFW, 300W), 3D models on AFLW2000-3D.
PUBLISHED = collections.OrderedDict([
    ('hg2d4-resnet', Model('Hourglass2(d=4)-Resnet', 'hourglass', 'resnet', 4, 'i2d',
                           'model-hg2d4-resnet', '1YPfF3t4J33Zj5goIZBk15TsxbqHB90rR', 26,
                           {'ibug': 7.719, 'cofw_testset': 6.776, '300W': 6.482})),
    ('hg2d3-hpm', Model('Hourglass2(d=3)-HPM', 'hourglass', 'hpm', 3, 'i2d',
                        'model-hg2d3-hpm', '1-rDuuzxw9civqz9wTtklYqT6k3utr6Gc', 38,
                        {'ibug': 7.249, 'cofw_testset': 6.378, '300W': 6.049})),
    ('hg2d4-cab', Model('Hourglass2(d=4)-CAB', 'hourglass', 'cab', 4, 'i2d',
                        'model-hg2d4-cab', '1o--WwpHoRw2W5bScan6t16vEKS53WBBm', 46,
                        {'ibug': 7.168, 'cofw_testset': 6.123, '300W': 5.684})),
    ('sat2d3-cab', Model('SAT2(d=3)-CAB', 'satnet', 'cab', 3, 'i2d',
                         'model-sat2d3-cab', '1n-Nd4rdik-IWqIzgIEdssDKvZ7SwuOff', 40,
                         {'ibug': 7.052, 'cofw_testset': 5.999, '300W': 5.618})),
    ('hg2d3-cab', Model('Hourglass2(d=3)-CAB', 'hourglass', 'cab', 3, 'i2d',
                        'model-hg2d3-cab', '1AbTGhIBzUUINTH2GNL05tSWvOHnclRr4', 37,
                        {'ibug': 6.974, 'cofw_testset': 5.983, '300W': 5.647})),
    ('sat2d3-cab-3d', Model('SAT2(d=3)-CAB-3D', 'satnet', 'cab', 3, 'i3d',
                            'model-sat2d3-cab-3d', '1lxHbWZa_l457oFX4tgSpFaubDKU7LNuq', 40,
                            {'AFLW2000-3D': 3.072})),
    ('hg2d3-cab-3d', Model('Hourglass2(d=3)-CAB-3D', 'hourglass', 'cab', 3, 'i3d',
                           'model-hg2d3-cab-3d', '17rk_MiI_7CLfKqV8dsXvRyd56sfBcqMD', 37,
                           {'AFLW2000-3D': 3.005})),
])


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
