"""hfa: manage Hugging Face Hub assets the way uv manages packages."""

__version__ = "0.1.0"
