"""models package (see DESIGN in README)."""
