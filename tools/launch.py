"""Start a `--kvstore dist_sync` job (see core.training.launcher):

    python -m tools.launch --cluster local --num-workers 2 python train.py --kvstore dist_sync
    python -m tools.launch --cluster ssh --host-file hosts --num-workers 2 python train.py ...
"""
import sys

from core.training.launcher import main

if __name__ == '__main__':
    sys.exit(main())
