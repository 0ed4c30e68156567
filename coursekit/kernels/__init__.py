"""Where student code runs: warm forked kernels, their sandbox, probe children, runaway-proof execution."""
