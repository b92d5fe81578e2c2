"""fmcore's built-in data sets: 2D benchmarks and arrays from files."""
