"""Training: the option table (options.py), run length and learning-rate schedule in optimiser
steps (schedule.py), and the loop with evaluation, early stopping and checkpoints (trainer.py)."""
