"""The plugin machinery: the kinds table, hookspecs, registries and entry-point loading (docs/plugins.md)."""
