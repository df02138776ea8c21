"""ftctl: start, follow and understand fine-tuning jobs with early stopping."""

__version__ = "0.1.0"
