"""Training, evaluation and inference logic shared by the scripts."""
