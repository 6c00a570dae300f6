"""Protocol buffers: the Alpasim egodriver / runtime wire contract (specs/egodriver.md).

The ``*_pb2.py`` / ``*_pb2.pyi`` / ``*_pb2_grpc.py`` modules are generated from the
``.proto`` files next to them and checked in; ``make proto`` regenerates them and
tests/unit/test_proto_stubs.py fails when they are stale.
"""
