"""The main job: synthesise data, train a small network, evaluate it, align
sample photos. Not built yet: it lands with the data, training and test issues."""
import sys


def main():
    print('make demo: not built yet (needs the data pipeline, train.py and test.py). '
          'Run `make test` to check the network builders.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
