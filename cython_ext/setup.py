"""Build the Cython helpers in place: `python setup.py build_ext --inplace`."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [Extension('_' + name, [name + '.pyx'], include_dirs=[np.get_include()],
                        define_macros=[('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')])
              for name in ('nms', 'anchors', 'bbox')]
setup(name='cython_ext', ext_modules=cythonize(extensions, quiet=True))
