"""The learner: DeepSpeed training on rollout records and versioned weight publishing.

Import the pieces from their modules (``redux.learner.loop`` pulls in DeepSpeed).
"""
