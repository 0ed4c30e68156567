"""The kit's checks as a Gradescope autograder: `make gradescope` builds the zip (build.py); on Gradescope,
`run_autograder` grades the submitted notebook as `make grade` would (run.py) and writes results.json (results.py).
Every setting an instructor may change is in settings.py."""
