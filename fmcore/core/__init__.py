"""The math of fmcore, no I/O: paths, predictions and their conversion, fields, objectives, samplers, networks,
data sets, noise, the base classes of the open component kinds (grids, time densities, diffusions) and exact
oracle fields. Imports nothing from the other layers (docs/architecture.md)."""
