"""Recipes: TOML -> typed options (every error gathered) -> built components, and the one compatibility check."""
