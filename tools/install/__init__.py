"""Installing the project on a machine: the package set-up (run before anything is
installed, so standard library only), the CUDA library hook, GPU diagnostics, and the
check of the CUDA install."""
