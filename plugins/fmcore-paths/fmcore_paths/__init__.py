"""fmcore's built-in probability paths: CondOT, VP and VE."""
