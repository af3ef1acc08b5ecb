"""Face detection with 5 landmarks and similarity alignment (paper IV.A)."""
