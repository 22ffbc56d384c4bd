"""Tools over a policy: format, tests, coverage, explain."""
