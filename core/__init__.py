"""Training, evaluation and inference logic shared by the scripts.

MXNet's oneDNN notice ("Subgraph backend MKLDNN is activated") is hidden by
default; MXNET_SUBGRAPH_VERBOSE=1 or a script's --verbose/--debug shows it.
"""
import os

os.environ.setdefault('MXNET_SUBGRAPH_VERBOSE', '0')
