"""What every script does around its work: a user's mistake is one line on
stderr and exit code 1 (the traceback only with --debug), Ctrl-C is exit
130 (SIGTERM 143 where a script handles it), and third-party chatter
(MXNet's oneDNN notices, hidden by `core`) shows only when asked for."""
import argparse
import logging
import os
import signal
import sys


def run(body, argv=None, errors=()):
    """Call `body(argv)` and turn the errors a user can cause (ValueError,
    OSError and `errors`, and MXNet's GPU errors: out of memory, no kernel
    for the GPU) into one line. Returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background by a shell (`cmd &`), which ignores
        # SIGINT: `kill -INT` (Ctrl-C) still stops the work the usual way.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    debug = '--debug' in argv
    if debug or '--verbose' in argv:
        os.environ['MXNET_SUBGRAPH_VERBOSE'] = '1'
    try:
        return body(argv)
    except KeyboardInterrupt as err:
        return getattr(err, 'exit_code', 130)
    except (ValueError, OSError) + tuple(errors) as err:
        if debug:
            raise
        logging.shutdown()
        print('error: %s' % err, file=sys.stderr)
        return 1
    except Exception as err:
        from core.plumbing.devices import explain_error
        hint = explain_error(str(err)) if type(err).__name__ == 'MXNetError' else None
        if hint is None or debug:
            raise
        logging.shutdown()
        print('error: %s' % hint, file=sys.stderr)
        return 1


def ranged(kind, low=None, high=None, above=None, words=None):
    """An argparse type: a finite `kind` (int or float) >= `low` (or >
    `above`) and <= `high`; a value outside says the range, and argparse
    names the flag. `words` (e.g. 'dynamic') is also accepted as itself."""
    def convert(text):
        if words is not None and text == words:
            return text
        try:
            value = kind(text)
        except ValueError:
            value = None
        bad = value is None or value != value or value in (float('inf'), float('-inf')) or \
            (low is not None and value < low) or (high is not None and value > high) or \
            (above is not None and value <= above)
        if bad:
            need = ' and '.join(w for w in (
                '>= %s' % low if low is not None else '', '> %s' % above if above is not None
                else '', '<= %s' % high if high is not None else '') if w)
            raise argparse.ArgumentTypeError('%r is not allowed: expected %s %s%s' % (
                text, 'an integer' if kind is int else 'a number', need,
                ', or ' + words if words else ''))
        return value
    return convert


def add_flags(parser):
    """The flags every script takes: --verbose (third-party messages) and
    --debug (tracebacks and all messages)."""
    parser.add_argument('--verbose', action='store_true', help='third-party messages too')
    parser.add_argument('--debug', action='store_true', help='tracebacks and all messages')


def setup_logging(debug=False):
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format='%(asctime)s %(message)s', datefmt='%H:%M:%S')


def plural(count, word, suffix='s'):
    """'1 face', '3 faces'."""
    return '%d %s%s' % (count, word, '' if count == 1 else suffix)
