"""The composing code of the scripts, one folder per path a command serves:

    core/training/     the training loop, distributed workers and their launcher,
                       the optimizer, the device feeder, writing a run's record
    core/inference/    predictors and their backends, the photo handler (the Python
                       API), video tracking, ONNX export and INT8 quantization
    core/evaluation/   the evaluation protocol, NME reports, figures and pages
    core/plumbing/     what every path uses: the configuration, the command-line
                       frame, devices, checkpoints, reading a run's files, drawing

Inference and evaluation never import training code; plumbing imports none
of the three. The libraries below (symbol/, data/, essh/) never import core/.

MXNet's oneDNN notice ("Subgraph backend MKLDNN is activated") is hidden by
default; MXNET_SUBGRAPH_VERBOSE=1 or a script's --verbose/--debug shows it.
"""
import os

os.environ.setdefault('MXNET_SUBGRAPH_VERBOSE', '0')
