"""Weight transports: the learner publishes versioned weights, replicas fetch them."""

from redux.learner.weight_transport.base import WeightHandle, WeightTransport, fetch_weights, make_transport

__all__ = ["WeightHandle", "WeightTransport", "fetch_weights", "make_transport"]
