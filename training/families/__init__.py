"""One module per model family; each registers itself with training.family.register."""
