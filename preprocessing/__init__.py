"""preprocessing package (see DESIGN in README)."""
