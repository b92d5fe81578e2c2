"""fmcore's built-in samplers."""
