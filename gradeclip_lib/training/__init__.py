"""Training utilities the ShapesWorld trainers share, below the models: checkpoints that resume a run
bit for bit (`checkpoint`), and the loss, schedule and mixed precision (`steps`)."""
