"""Start distributed training (`--kvstore dist_sync`) with MXNet's own
tracker, over ssh or as local processes.

    # hosts: one hostname per line, each with this checkout at the same path
    python -m tools.launch --cluster ssh --num-workers 2 --num-servers 2 \\
        --host-file hosts python train.py --kvstore dist_sync --prefix ./models/dist/model
    # try it on one machine:
    python -m tools.launch --cluster local --num-workers 2 --num-servers 1 \\
        python train.py --kvstore dist_sync ...

The options are those of MXNet's dmlc tracker (`--help`); this wrapper avoids
its submit module, which needs the kubernetes package, and gives its threads
the `isAlive` it calls (removed from Python in 3.9). The command is run through
a shell: quote values that hold brackets or quotes twice.
"""
import sys
import threading

from dmlc_tracker import local, opts, ssh


def main(argv=None):
    if not hasattr(threading.Thread, 'isAlive'):
        threading.Thread.isAlive = threading.Thread.is_alive
    args = opts.get_opts(argv)
    if args.cluster not in ('local', 'ssh'):
        sys.exit('--cluster must be local or ssh, got %r' % args.cluster)
    if args.num_servers == 0:
        args.num_servers = args.num_workers
    (ssh if args.cluster == 'ssh' else local).submit(args)


if __name__ == '__main__':
    main()
