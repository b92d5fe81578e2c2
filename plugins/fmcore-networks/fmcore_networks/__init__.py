"""fmcore's built-in networks."""
