"""Campaign specification: the model, its checks, and loading from files."""
